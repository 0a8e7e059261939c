package mitm

import (
	"crypto/tls"
	"io"
	"net/http"
	"net/url"
	"path/filepath"
	"runtime"
	"runtime/metrics"
	"strconv"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/mitmlab/mitmlab/ca"
)

// BenchmarkInterceptRecording is issue 11's "recording on" row in process:
// 8 concurrent clients download 64 KiB and 1 MiB bodies through
// interception, with recording off and on (flows.jsonl, the HAR and a key
// log, the default body cap). Besides ns/op it reports the CPU time per
// request of the whole process (client and origin included), the peak of
// the heap (live and unswept objects, sampled every 5ms) during the run,
// and for recording on the time the HAR took to complete at Close.
func BenchmarkInterceptRecording(b *testing.B) {
	for _, size := range []int{64 << 10, 1 << 20} {
		for _, rec := range []string{"off", "on"} {
			b.Run("body="+strconv.Itoa(size>>10)+"KiB/recording="+rec, func(b *testing.B) {
				w := newWorld(b)
				w.h1Only = true
				h1 := w.startOrigin(b, ca.ProfileValid)
				dir := b.TempDir()
				var closers []func() error
				p := w.startProxy(b, func(c *Config) {
					c.Recorders = nil
					c.KeyLog = nil
					if rec == "off" {
						return
					}
					j, err := CreateJSONL(filepath.Join(dir, "flows.jsonl"))
					if err != nil {
						b.Fatal(err)
					}
					h, err := benchHAR(filepath.Join(dir, "flows.har"), j)
					if err != nil {
						b.Fatal(err)
					}
					k, err := CreateKeyLog(filepath.Join(dir, "keys.log"))
					if err != nil {
						b.Fatal(err)
					}
					c.Recorders = []Recorder{j, h}
					c.KeyLog = k
					closers = []func() error{j.Close, h.Close, k.Close}
				})
				proxyURL, _ := url.Parse("http://" + p.addr)
				client := &http.Client{Transport: &http.Transport{
					Proxy:               http.ProxyURL(proxyURL),
					TLSClientConfig:     &tls.Config{RootCAs: w.roguePool},
					MaxIdleConnsPerHost: 16,
					TLSNextProto:        map[string]func(string, *tls.Conn) http.RoundTripper{},
				}}
				target := "https://bank.lab.test:" + h1.port + "/big?n=" + strconv.Itoa(size)
				peak := sampleHeap()
				cpu := cpuTime()
				b.SetBytes(int64(size))
				b.SetParallelism(8 / max(1, runtime.GOMAXPROCS(0)))
				b.ResetTimer()
				b.RunParallel(func(pb *testing.PB) {
					for pb.Next() {
						resp, err := client.Get(target)
						if err != nil {
							b.Error(err)
							return
						}
						io.Copy(io.Discard, resp.Body)
						resp.Body.Close()
					}
				})
				client.CloseIdleConnections()
				p.Shutdown(b.Context()) // the recorders' queue drains: part of recording
				b.StopTimer()
				b.ReportMetric(float64(cpuTime()-cpu)/float64(time.Microsecond)/float64(b.N), "cpu-µs/op")
				b.ReportMetric(float64(peak())/(1<<20), "peak-heap-MiB")
				start := time.Now()
				for _, c := range closers {
					if err := c(); err != nil {
						b.Fatal(err)
					}
				}
				if rec == "on" {
					b.ReportMetric(float64(time.Since(start).Milliseconds()), "close-ms")
				}
			})
		}
	}
}

// sampleHeap samples the heap's size until the returned function is
// called, which returns the largest sample.
func sampleHeap() func() uint64 {
	var peakBytes atomic.Uint64
	stop := make(chan struct{})
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		s := []metrics.Sample{{Name: "/memory/classes/heap/objects:bytes"}}
		t := time.NewTicker(5 * time.Millisecond)
		defer t.Stop()
		for {
			metrics.Read(s)
			if v := s[0].Value.Uint64(); v > peakBytes.Load() {
				peakBytes.Store(v)
			}
			select {
			case <-stop:
				return
			case <-t.C:
			}
		}
	}()
	return func() uint64 {
		close(stop)
		wg.Wait()
		return peakBytes.Load()
	}
}
