package mitm

import (
	"bytes"
	"encoding/json"
	"fmt"
	"reflect"
	"strings"
	"sync"
)

// marshal is json.Marshal without HTML escaping. encoding/json writes &, <
// and > as \u0026, \u003c and \u003e by default, to make JSON safe to
// paste into HTML; in a flow file that only hides "a=1&b=2" from grep.
func marshal(v any) ([]byte, error) {
	var buf bytes.Buffer
	enc := json.NewEncoder(&buf)
	enc.SetEscapeHTML(false)
	if err := enc.Encode(v); err != nil {
		return nil, err
	}
	return bytes.TrimSuffix(buf.Bytes(), []byte("\n")), nil
}

// flowEncoder writes a Flow as one line of flows.jsonl, streaming each
// body from its chunks into the writer once (Body.encodeJSON) and leaving
// everything else to encoding/json, so the line is what json.Marshal would
// write (TestFlowEncoderMatchesJSON), without encoding/json's copy and
// re-scan of a Marshaler's output, which cost issue 11 a quarter of the
// CPU under 64 KiB bodies.
//
// The fields are found by reflection, not listed: a struct on the way from
// Flow to a Body (Flow, Request, Response) is walked field by field, and
// each run of fields between the walked ones is given to encoding/json as
// one struct of the same fields with the same tags (reflect.StructOf), so
// names, omitempty and every other tag option stay encoding/json's. A
// field added to Flow is written without a change here.
//
// A flowEncoder is used by one goroutine at a time.
type flowEncoder struct {
	buf     bytes.Buffer
	enc     *json.Encoder
	scratch map[*fieldRun]reflect.Value
	// beside, when set, may put a body beside the line: it returns where
	// it wrote the body's bytes and how many, or ok false to write the
	// body in the line.
	beside func(b *Body) (offset, n int64, ok bool, err error)
	// tls holds each TLS leg's description as written: the flows of a
	// connection share one *TLSInfo (both legs' certificates described
	// once per connection), which made it most of a small flow's line and
	// a fifth of the recorder's CPU under small requests. A TLSInfo is not
	// changed once a flow holding it is recorded; the map holds it, so its
	// address is not reused while it is a key. Bounded: emptied at
	// tlsCacheMax.
	tls map[*TLSInfo][]byte
}

const tlsCacheMax = 1024

// tlsJSON returns t as encoding/json writes it (without HTML escaping).
func (e *flowEncoder) tlsJSON(t *TLSInfo) ([]byte, error) {
	if b, ok := e.tls[t]; ok {
		return b, nil
	}
	e.buf.Reset()
	if err := e.enc.Encode(t); err != nil {
		return nil, err
	}
	b := bytes.Clone(bytes.TrimSuffix(e.buf.Bytes(), []byte("\n")))
	if e.tls == nil || len(e.tls) >= tlsCacheMax {
		e.tls = make(map[*TLSInfo][]byte)
	}
	e.tls[t] = b
	return b, nil
}

func newFlowEncoder() *flowEncoder {
	e := &flowEncoder{scratch: map[*fieldRun]reflect.Value{}}
	e.enc = json.NewEncoder(&e.buf)
	e.enc.SetEscapeHTML(false)
	return e
}

// structPlan is how a struct on the way to a Body is written: its parts in
// field order.
type structPlan struct {
	parts []planPart
}

// planPart is a run of plain fields or one field leading to a Body.
type planPart struct {
	run *fieldRun
	// A field leading to a Body:
	index     int
	key       string // `"name":`
	omitEmpty bool   // omitempty or omitzero: a nil pointer is left out
	body      bool   // the field is a *Body
	cached    bool   // the field is a *TLSInfo, written from the encoder's cache
	sub       *structPlan
	ptr       bool // the field is a pointer to the struct sub describes
}

// fieldRun is consecutive fields encoding/json writes as they are.
type fieldRun struct {
	typ   reflect.Type // a struct of those fields, with their tags
	index []int        // their indexes in the walked struct
}

var (
	bodyType    = reflect.TypeFor[Body]()
	tlsInfoType = reflect.TypeFor[*TLSInfo]()
	plans       sync.Map // reflect.Type → *structPlan or error
)

// planOf returns the plan of struct type t, built once.
func planOf(t reflect.Type) (*structPlan, error) {
	if v, ok := plans.Load(t); ok {
		if err, ok := v.(error); ok {
			return nil, err
		}
		return v.(*structPlan), nil
	}
	p, err := buildPlan(t)
	if err != nil {
		plans.Store(t, err)
		return nil, err
	}
	plans.Store(t, p)
	return p, nil
}

func buildPlan(t reflect.Type) (*structPlan, error) {
	p := &structPlan{}
	var run []reflect.StructField
	var runIndex []int
	endRun := func() {
		if len(run) > 0 {
			p.parts = append(p.parts, planPart{run: &fieldRun{typ: reflect.StructOf(run), index: runIndex}})
			run, runIndex = nil, nil
		}
	}
	for i := range t.NumField() {
		f := t.Field(i)
		if !f.IsExported() {
			if f.Anonymous {
				// encoding/json promotes the exported fields of an embedded
				// unexported struct; StructOf cannot copy one.
				return nil, fmt.Errorf("mitm: cannot stream %v: embedded unexported field %s", t, f.Name)
			}
			continue
		}
		tag := f.Tag.Get("json")
		if tag == "-" {
			continue
		}
		walk, ptr := leadsToBody(f.Type)
		cached := f.Type == tlsInfoType
		if (!walk && !cached) || f.Anonymous || strings.Contains(tag, ",string") {
			run = append(run, reflect.StructField{Name: f.Name, Type: f.Type, Tag: f.Tag, Anonymous: f.Anonymous})
			runIndex = append(runIndex, i)
			continue
		}
		endRun()
		name, opts, _ := strings.Cut(tag, ",")
		if name == "" {
			name = f.Name
		}
		key, err := marshal(name)
		if err != nil {
			return nil, err
		}
		part := planPart{index: i, key: string(key) + ":", ptr: ptr,
			omitEmpty: strings.Contains(","+opts+",", ",omitempty,") || strings.Contains(","+opts+",", ",omitzero,")}
		if cached {
			part.cached, part.ptr = true, true
			p.parts = append(p.parts, part)
			continue
		}
		elem := f.Type
		if ptr {
			elem = elem.Elem()
		}
		if elem == bodyType {
			part.body = true
		} else if part.sub, err = planOf(elem); err != nil {
			return nil, err
		}
		p.parts = append(p.parts, part)
	}
	endRun()
	return p, nil
}

// leadsToBody says whether t is a Body, a struct that holds one in a field
// (through pointers and structs only), or a pointer to either, which the
// encoder walks; ptr says it is a pointer.
func leadsToBody(t reflect.Type) (walk, ptr bool) {
	if t.Kind() == reflect.Pointer {
		ptr, t = true, t.Elem()
	}
	if t.Kind() != reflect.Struct {
		return false, false
	}
	if t == bodyType {
		return ptr, ptr // a Body value (not a pointer) goes to encoding/json
	}
	return holdsBody(t, map[reflect.Type]bool{}), ptr
}

func holdsBody(t reflect.Type, seen map[reflect.Type]bool) bool {
	if seen[t] {
		return false
	}
	seen[t] = true
	for i := range t.NumField() {
		f := t.Field(i)
		if !f.IsExported() {
			continue
		}
		ft := f.Type
		if ft.Kind() == reflect.Pointer {
			ft = ft.Elem()
		}
		if ft == bodyType || (ft.Kind() == reflect.Struct && holdsBody(ft, seen)) {
			return true
		}
	}
	return false
}

// encode writes f as one JSON object, without the newline.
func (e *flowEncoder) encode(w jsonWriter, f *Flow) error {
	p, err := planOf(reflect.TypeFor[Flow]())
	if err != nil {
		// Cannot happen while TestFlowEncoderMatchesJSON passes; stay
		// correct anyway, the slow way.
		b, merr := marshal(f)
		if merr != nil {
			return merr
		}
		_, err = w.Write(b)
		return err
	}
	return e.encodeStruct(w, reflect.ValueOf(f).Elem(), p)
}

func (e *flowEncoder) encodeStruct(w jsonWriter, v reflect.Value, p *structPlan) error {
	w.WriteByte('{')
	first := true
	comma := func() {
		if !first {
			w.WriteByte(',')
		}
		first = false
	}
	for i := range p.parts {
		part := &p.parts[i]
		if part.run != nil {
			inner, err := e.encodeRun(v, part.run)
			if err != nil {
				return err
			}
			if len(inner) > 0 {
				comma()
				w.Write(inner)
			}
			continue
		}
		fv := v.Field(part.index)
		if part.ptr && fv.IsNil() {
			if !part.omitEmpty {
				comma()
				w.WriteString(part.key)
				w.WriteString("null")
			}
			continue
		}
		comma()
		w.WriteString(part.key)
		if part.cached {
			b, err := e.tlsJSON(fv.Interface().(*TLSInfo))
			if err != nil {
				return err
			}
			w.Write(b)
			continue
		}
		if part.body {
			b := fv.Interface().(*Body)
			if e.beside != nil {
				at, n, ok, err := e.beside(b)
				if err != nil {
					return err
				}
				if ok {
					if err := b.encodeBesideRef(w, at, n); err != nil {
						return err
					}
					continue
				}
			}
			if err := b.encodeJSON(w); err != nil {
				return err
			}
			continue
		}
		if part.ptr {
			fv = fv.Elem()
		}
		if err := e.encodeStruct(w, fv, part.sub); err != nil {
			return err
		}
	}
	_, err := w.WriteString("}")
	return err
}

// encodeRun returns the fields of run in v as encoding/json writes them in
// an object, without the braces: empty when every one was omitted.
func (e *flowEncoder) encodeRun(v reflect.Value, run *fieldRun) ([]byte, error) {
	s, ok := e.scratch[run]
	if !ok {
		s = reflect.New(run.typ)
		e.scratch[run] = s
	}
	sv := s.Elem()
	for i, idx := range run.index {
		sv.Field(i).Set(v.Field(idx))
	}
	e.buf.Reset()
	err := e.enc.Encode(s.Interface())
	sv.SetZero() // keep nothing of the flow alive
	if err != nil {
		return nil, err
	}
	b := bytes.TrimSuffix(e.buf.Bytes(), []byte("\n"))
	return b[1 : len(b)-1], nil
}
