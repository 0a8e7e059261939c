package mitm

import (
	"bytes"
	"fmt"
	"reflect"
	"strings"
	"testing"
	"time"
)

// fill sets every exported field of v, as deep as it goes, to a value that
// is not zero, so that a field added to Flow is in the comparison below
// without a change to this test.
func fill(t *testing.T, v reflect.Value, name string) {
	switch v.Kind() {
	case reflect.Pointer:
		if v.Type() == reflect.TypeFor[*Body]() {
			v.Set(reflect.ValueOf(captured(t, []byte("body of "+name+" with \"quotes\", <&> and \u2028"), 4, 1000)))
			return
		}
		v.Set(reflect.New(v.Type().Elem()))
		fill(t, v.Elem(), name)
	case reflect.Struct:
		if v.Type() == reflect.TypeFor[time.Time]() {
			v.Set(reflect.ValueOf(time.Date(2026, 12, 1, 20, 30, 0, 123456789, time.UTC)))
			return
		}
		for i := range v.NumField() {
			if f := v.Type().Field(i); f.IsExported() {
				fill(t, v.Field(i), name+"."+f.Name)
			}
		}
	case reflect.String:
		v.SetString(name + " a=1&b=<2> \"q\" \\ é")
	case reflect.Bool:
		v.SetBool(true)
	case reflect.Int, reflect.Int8, reflect.Int16, reflect.Int32, reflect.Int64:
		v.SetInt(42)
	case reflect.Uint, reflect.Uint8, reflect.Uint16, reflect.Uint32, reflect.Uint64:
		v.SetUint(42)
	case reflect.Float32, reflect.Float64:
		v.SetFloat(12.345)
	case reflect.Slice:
		s := reflect.MakeSlice(v.Type(), 2, 2)
		for i := range 2 {
			fill(t, s.Index(i), fmt.Sprintf("%s[%d]", name, i))
		}
		v.Set(s)
	case reflect.Map:
		m := reflect.MakeMap(v.Type())
		k, e := reflect.New(v.Type().Key()).Elem(), reflect.New(v.Type().Elem()).Elem()
		fill(t, k, name+".key")
		fill(t, e, name+".value")
		m.SetMapIndex(k, e)
		v.Set(m)
	default:
		t.Fatalf("fill: %s is a %v: teach this test to fill it", name, v.Kind())
	}
}

// TestFlowEncoderMatchesJSON: the streaming encoder of flows.jsonl writes
// what encoding/json writes for the same flow (with &, < and > as they
// are), every field of Flow set or left out: the encoder finds the fields by
// reflection, so a field added to Flow stays in the file.
func TestFlowEncoderMatchesJSON(t *testing.T) {
	full := &Flow{}
	fill(t, reflect.ValueOf(full).Elem(), "flow")
	bare := &Flow{ID: "2", Handling: Tunnelled, Timings: noTimings(), Tunnel: &TunnelStats{BytesUp: 1}}
	noBody := &Flow{ID: "3", Request: &Request{Method: "GET", URL: "https://x/?a=1&b=2"}, Response: &Response{Status: 204}}
	binary := &Flow{ID: "4", Request: &Request{Method: "POST", Body: captured(t, []byte{0, 1, 2, 0xff}, 1, 10)},
		Response: &Response{Status: 502, Body: &Body{Size: 5, Data: []byte("bad\n\x00")}}}
	enc := newFlowEncoder()
	for i, f := range []*Flow{full, bare, noBody, binary, full} {
		want, err := marshal(f)
		if err != nil {
			t.Fatal(err)
		}
		var got bytes.Buffer
		if err := enc.encode(&got, f); err != nil {
			t.Fatal(err)
		}
		if got.String() != string(want) {
			t.Errorf("flow %d:\nstreamed      %s\nencoding/json %s", i, got.String(), want)
		}
	}
	if p, err := planOf(reflect.TypeFor[Flow]()); err != nil || len(p.parts) < 3 {
		t.Errorf("plan of Flow = %v, %v: want the fields streamed, not the slow way", p, err)
	}
	var got bytes.Buffer
	enc.encode(&got, full)
	if !strings.Contains(got.String(), `"text":"body of flow.Request.Body with \"quotes\", <&> and \u2028"`) {
		t.Errorf("streamed flow lacks its request body as text: %s", got.String())
	}
}
