package mitm

import (
	"crypto/tls"
	"io"
	"net/http"
	"net/url"
	"runtime"
	"strconv"

	"testing"

	"github.com/mitmlab/mitmlab/ca"
)

// BenchmarkInterceptConcurrency measures requests per second through
// interception with 8 concurrent clients and an HTTP/1.1 origin, with the
// upstream pool net/http (and goproxy) default to, 2 idle connections per
// host, against mitmlab's 64. With 2, most requests pay a fresh TCP and TLS
// handshake to the origin; compare the two ns/op in the same run.
func BenchmarkInterceptConcurrency(b *testing.B) {
	for _, pool := range []int{2, 64} {
		b.Run("idle-per-host="+strconv.Itoa(pool), func(b *testing.B) {
			w := newWorld(b)
			w.h1Only = true
			h1 := w.startOrigin(b, ca.ProfileValid)
			p := w.startProxy(b, func(c *Config) {
				c.Limits.UpstreamIdlePerHost = pool
				c.Recorders = nil
				c.KeyLog = nil
			})
			proxyURL, _ := url.Parse("http://" + p.addr)
			client := &http.Client{Transport: &http.Transport{
				Proxy:               http.ProxyURL(proxyURL),
				TLSClientConfig:     &tls.Config{RootCAs: w.roguePool},
				MaxIdleConnsPerHost: 16,
				TLSNextProto:        map[string]func(string, *tls.Conn) http.RoundTripper{},
			}}
			target := "https://bank.lab.test:" + h1.port + "/"
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
		})
	}
}
