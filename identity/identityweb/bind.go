package identityweb

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"mime"
	"net/http"
	"reflect"
	"strconv"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/gin-gonic/gin"
	"github.com/go-json-experiment/json"
	"github.com/go-json-experiment/json/jsontext"
	"github.com/go-playground/validator/v10"
	"github.com/google/uuid"

	"github.com/lupa-cmp/lupa/identity"
)

// Body size limits.
const (
	PublicBodyLimit = 64 << 10 // every endpoint but the bulk check
	CheckBodyLimit  = 2 << 20  // POST /v1/consents/check
)

// API is the request plumbing a handler needs: binding, validation and error writing.
type API struct {
	Log      *slog.Logger
	validate *validator.Validate
}

// NewAPI returns the plumbing; the validator reads `validate` tags and names fields by
// their JSON names.
func NewAPI(log *slog.Logger) *API {
	v := validator.New(validator.WithRequiredStructEnabled())
	v.RegisterTagNameFunc(func(f reflect.StructField) string {
		if name := jsonName(f); name != "-" {
			return name
		}
		return ""
	})
	return &API{Log: log, validate: v}
}

// jsonName is the name a struct field has in JSON: its tag's, else its Go name; "-" when
// it has none.
func jsonName(f reflect.StructField) string {
	if name, _, _ := strings.Cut(f.Tag.Get("json"), ","); name != "" {
		return name
	}
	return f.Name
}

// Fail writes err as a problem.
func (a *API) Fail(c *gin.Context, err error) { Fail(c, a.Log, err) }

// ReadBody reads a JSON request body of at most limit bytes. On failure it has answered
// (413, 415, 400) and returns false.
func (a *API) ReadBody(c *gin.Context, limit int64) ([]byte, bool) {
	ct := c.GetHeader("Content-Type")
	mt, params, err := mime.ParseMediaType(ct)
	if err != nil || (mt != "application/json" && !strings.HasSuffix(mt, "+json")) {
		WriteProblem(c, http.StatusUnsupportedMediaType, codeMediaType, "Unsupported Media Type",
			"send the body as application/json", nil)
		return nil, false
	}
	// JSON is UTF-8 (RFC 8259): a body declared in another charset would be read wrongly.
	if cs, ok := params["charset"]; ok && !strings.EqualFold(cs, "utf-8") {
		WriteProblem(c, http.StatusUnsupportedMediaType, codeMediaType, "Unsupported Media Type",
			"send the body as UTF-8 (charset=utf-8, or no charset)", nil)
		return nil, false
	}
	// Lupa reads bodies as sent: a compressed one would be parsed as garbage (RFC 9110 15.5.16).
	if ce := c.GetHeader("Content-Encoding"); ce != "" && !strings.EqualFold(ce, "identity") {
		WriteProblem(c, http.StatusUnsupportedMediaType, codeMediaType, "Unsupported Media Type",
			"send the body uncompressed (no Content-Encoding)", nil)
		return nil, false
	}
	if c.Request.ContentLength > limit {
		WriteProblem(c, http.StatusRequestEntityTooLarge, codeTooLarge, "Content Too Large",
			fmt.Sprintf("the body may be at most %d bytes", limit), nil)
		return nil, false
	}
	body, err := readAll(http.MaxBytesReader(c.Writer, c.Request.Body, limit), c.Request.ContentLength)
	var tooBig *http.MaxBytesError
	if errors.As(err, &tooBig) {
		WriteProblem(c, http.StatusRequestEntityTooLarge, codeTooLarge, "Content Too Large",
			fmt.Sprintf("the body may be at most %d bytes", limit), nil)
		return nil, false
	}
	if err != nil {
		WriteProblem(c, http.StatusBadRequest, codeMalformed, "Bad Request", "the body could not be read", nil)
		return nil, false
	}
	return body, true
}

// readAll reads r into a buffer sized for the announced length (already checked against
// the limit): a bulk check's megabyte would otherwise be copied through a dozen growths.
func readAll(r io.Reader, length int64) ([]byte, error) {
	if length <= 0 {
		return io.ReadAll(r)
	}
	buf := bytes.NewBuffer(make([]byte, 0, length+bytes.MinRead))
	_, err := buf.ReadFrom(r)
	return buf.Bytes(), err
}

// Decode parses body into dst strictly and validates it: unknown, duplicate or
// differently cased member names and trailing data are errors. On failure it has answered
// 400 and returns false.
func (a *API) Decode(c *gin.Context, body []byte, dst any) bool {
	// JSON is UTF-8 (RFC 8259); say so plainly rather than as a syntax error.
	if !utf8.Valid(body) {
		WriteProblem(c, http.StatusBadRequest, codeMalformed, "Bad Request", "the body is not UTF-8", nil)
		return false
	}
	if err := json.Unmarshal(body, dst, strictJSON); err != nil {
		WriteProblem(c, http.StatusBadRequest, codeMalformed, "Bad Request", "the body is not valid JSON for this endpoint", jsonFieldErrors(dst, err))
		return false
	}
	var fields []identity.FieldError
	if err := a.validate.Struct(dst); err != nil {
		var ve validator.ValidationErrors
		if !errors.As(err, &ve) {
			a.Fail(c, err)
			return false
		}
		fields = fieldErrors(ve)
	}
	if mayHoldControl(body) {
		fields = mergeFields(fields, controlChars(reflect.ValueOf(dst), ""))
	}
	if len(fields) == 0 {
		return true
	}
	// The body is refused already; its service's rules would only be heard on the next try.
	if dc, ok := dst.(DomainChecker); ok {
		fields = mergeFields(fields, invalidFields(dc.DomainCheck()))
	}
	WriteProblem(c, http.StatusBadRequest, identity.EInvalid, "Bad Request", "validation failed", fields)
	return false
}

// DomainChecker is a request body that can run, without the database, the checks its
// service runs on what the body becomes. Decode asks only for a body it refuses anyway, so
// that one answer names every field at fault: the tags' and the service's. A valid body is
// left to the service, which checks it once.
type DomainChecker interface{ DomainCheck() error }

// invalidFields is the field list of a validation error; other errors (a 422, a 500) are
// the service's to answer when the body is valid.
func invalidFields(err error) []identity.FieldError {
	var e *identity.Error
	if errors.As(err, &e) && e.Code == identity.EInvalid {
		return e.Fields
	}
	return nil
}

// mergeFields adds to fields those of more about fields that fields does not name, nor a
// member they are part of: the earlier stage's message is the more precise one (the tags',
// then the control characters'), a field said twice in other words only confuses, and
// "retention.anchor" says nothing more of a retention the tags found missing.
func mergeFields(fields, more []identity.FieldError) []identity.FieldError {
	named := make(map[string]bool, len(fields))
	for _, f := range fields {
		named[f.Field] = true
	}
next:
	for _, f := range more {
		for path := f.Field; path != ""; path = parentField(path) {
			if named[path] {
				continue next
			}
		}
		fields = append(fields, f)
	}
	return fields
}

// parentField is the member a field path is part of: "texts[fi]" of "texts[fi].title",
// "texts" of "texts[fi]", "" of "texts".
func parentField(path string) string {
	if i := strings.LastIndexAny(path, ".["); i >= 0 {
		return path[:i]
	}
	return ""
}

// mayHoldControl says whether a valid JSON body can decode to a string with a control
// character: JSON forbids them raw below U+0020, so they arrive as escapes (which need a
// backslash), as DEL, or as a C1 character (UTF-8 0xC2 0x80–0x9F). Most bodies have none
// of these, and skip the walk through every decoded string.
func mayHoldControl(body []byte) bool {
	if bytes.IndexByte(body, '\\') >= 0 || bytes.IndexByte(body, 0x7f) >= 0 {
		return true
	}
	for i := bytes.IndexByte(body, 0xc2); i >= 0; {
		if i+1 < len(body) && body[i+1] >= 0x80 && body[i+1] < 0xa0 {
			return true
		}
		next := bytes.IndexByte(body[i+1:], 0xc2)
		if next < 0 {
			break
		}
		i += 1 + next
	}
	return false
}

// controlChars names every string in v that holds a control character other than tab, line
// feed or carriage return. None has a use in Lupa's data, NUL cannot be stored in
// PostgreSQL at all, and escape sequences in names end up in terminals and logs.
func controlChars(v reflect.Value, path string) []identity.FieldError {
	switch v.Kind() {
	case reflect.Pointer, reflect.Interface:
		if !v.IsNil() {
			return controlChars(v.Elem(), path)
		}
	case reflect.String:
		if hasControl(v.String()) {
			return []identity.FieldError{{Field: path, Message: "must not contain control characters"}}
		}
	case reflect.Struct:
		var out []identity.FieldError
		t := v.Type()
		for i := range t.NumField() {
			f := t.Field(i)
			name := jsonName(f)
			if !f.IsExported() || name == "-" {
				continue
			}
			if path != "" {
				name = path + "." + name
			}
			out = append(out, controlChars(v.Field(i), name)...)
		}
		return out
	case reflect.Slice, reflect.Array:
		var out []identity.FieldError
		for i := range v.Len() {
			out = append(out, controlChars(v.Index(i), path+"["+strconv.Itoa(i)+"]")...)
		}
		return out
	case reflect.Map:
		var out []identity.FieldError
		iter := v.MapRange()
		for iter.Next() {
			k := fmt.Sprint(iter.Key().Interface())
			if hasControl(k) {
				out = append(out, identity.FieldError{Field: path, Message: "keys must not contain control characters"})
				continue
			}
			out = append(out, controlChars(iter.Value(), path+"["+k+"]")...)
		}
		return out
	}
	return nil
}

func hasControl(s string) bool {
	for _, r := range s {
		if (r < 0x20 && r != '\t' && r != '\n' && r != '\r') || (r >= 0x7f && r < 0xa0) {
			return true
		}
	}
	return false
}

// Bind reads, decodes and validates a JSON body.
func (a *API) Bind(c *gin.Context, limit int64, dst any) bool {
	body, ok := a.ReadBody(c, limit)
	return ok && a.Decode(c, body, dst)
}

// bodySent says whether the request came with a body: a length, or a type for it.
func bodySent(c *gin.Context) bool {
	return c.Request.ContentLength != 0 || c.GetHeader("Content-Type") != ""
}

// NoBody guards a POST that takes no body (publish, ledger checks, enable, replay). Some
// clients send one anyway, often `{}`; it must still be what any body must be (JSON, else
// 415; at most PublicBodyLimit, else 413) and hold nothing, else 400: a body that is not
// what the client meant is refused rather than ignored. Behind Idempotent it checks the
// body that middleware read.
func NoBody(api *API) gin.HandlerFunc {
	return func(c *gin.Context) {
		var body []byte
		if b, read := c.Get(contextBody); read {
			body, _ = b.([]byte)
		} else if bodySent(c) {
			var ok bool
			if body, ok = api.ReadBody(c, PublicBodyLimit); !ok {
				return
			}
		}
		var none struct{}
		if len(body) > 0 && !api.Decode(c, body, &none) {
			return
		}
		c.Next()
	}
}

// QueryID reads the query parameter name as an id Lupa gave: a page cursor such as
// ?before= is the id of the last item seen. Absent, it is "". Anything else is answered 400
// naming the parameter and false returned: ids compare as strings, so a malformed cursor
// would otherwise quietly start over at the first page.
func QueryID(c *gin.Context, name string) (string, bool) {
	v := c.Query(name)
	if v == "" {
		return "", true
	}
	if u, err := uuid.Parse(v); err != nil || u.String() != v {
		WriteProblem(c, http.StatusBadRequest, identity.EInvalid, "Bad Request", "validation failed",
			[]identity.FieldError{{Field: name, Message: "is not a cursor this API gave"}})
		return "", false
	}
	return v, true
}

// strictJSON decodes request bodies: a member the endpoint does not know is an error, not
// silently dropped. Names match exactly, and a name given twice is an error (which of two
// values counts must not depend on the parser reading it).
var strictJSON = json.RejectUnknownMembers(true)

// jsonFieldErrors names, field by field, what the decoder found wrong.
func jsonFieldErrors(dst any, err error) []identity.FieldError {
	t := reflect.TypeOf(dst)
	var se *json.SemanticError
	if errors.As(err, &se) {
		field := pointerPath(t, se.JSONPointer)
		switch {
		case errors.Is(se.Err, json.ErrUnknownName):
			return []identity.FieldError{{Field: field, Message: "is not a field of this request"}}
		case se.GoType != nil:
			return []identity.FieldError{{Field: field, Message: "must be " + jsonKind(se.GoType)}}
		}
		return []identity.FieldError{{Field: field, Message: "is not valid"}}
	}
	var xe *jsontext.SyntacticError
	if errors.As(err, &xe) {
		if errors.Is(xe.Err, jsontext.ErrDuplicateName) {
			return []identity.FieldError{{Field: pointerPath(t, xe.JSONPointer), Message: "is given twice"}}
		}
		return []identity.FieldError{{Field: pointerPath(t, xe.JSONPointer),
			Message: "syntax error at byte " + strconv.FormatInt(xe.ByteOffset, 10)}}
	}
	return nil
}

// pointerPath turns a JSON Pointer into dst ("/decisions/0/purpose") into the field names
// the validator's errors use ("decisions[0].purpose"; a map's key as "labels[key]"),
// following dst's type to tell a map's keys from a struct's fields.
func pointerPath(dst reflect.Type, p jsontext.Pointer) string {
	var b strings.Builder
	t := dst
	for tok := range p.Tokens() {
		for t != nil && t.Kind() == reflect.Pointer {
			t = t.Elem()
		}
		switch {
		case t != nil && t.Kind() == reflect.Struct:
			if b.Len() > 0 {
				b.WriteByte('.')
			}
			b.WriteString(tok)
			t = fieldType(t, tok)
		case t != nil && (t.Kind() == reflect.Map || t.Kind() == reflect.Slice || t.Kind() == reflect.Array):
			b.WriteString("[" + tok + "]")
			t = t.Elem()
		default: // inside a value of no known type (an any): name it as a path
			if b.Len() > 0 {
				b.WriteByte('.')
			}
			b.WriteString(tok)
			t = nil
		}
	}
	return b.String()
}

// fieldType is the type of struct t's field named name in JSON, or nil.
func fieldType(t reflect.Type, name string) reflect.Type {
	for i := range t.NumField() {
		f := t.Field(i)
		if jsonName(f) == name {
			return f.Type
		}
		if f.Anonymous && f.Tag.Get("json") == "" { // an embedded struct's fields are the outer one's
			ft := f.Type
			if ft.Kind() == reflect.Pointer {
				ft = ft.Elem()
			}
			if ft.Kind() == reflect.Struct {
				if found := fieldType(ft, name); found != nil {
					return found
				}
			}
		}
	}
	return nil
}

// jsonKinder is a request type that says itself what it takes, when its Go kind would
// mislead (a cursor sent as a string, held as an integer).
type jsonKinder interface{ JSONKind() string }

// jsonKind says, in JSON's words, what a Go type takes.
func jsonKind(t reflect.Type) string {
	for t.Kind() == reflect.Pointer {
		t = t.Elem()
	}
	if t.Implements(reflect.TypeFor[jsonKinder]()) {
		return reflect.Zero(t).Interface().(jsonKinder).JSONKind()
	}
	// A time is a struct in Go but a string in JSON.
	if t == reflect.TypeFor[time.Time]() {
		return "an RFC 3339 date-time"
	}
	switch k := t.Kind(); k {
	case reflect.String:
		return "a string"
	case reflect.Bool:
		return "true or false"
	case reflect.Slice, reflect.Array:
		return "an array"
	case reflect.Map, reflect.Struct:
		return "an object"
	case reflect.Int, reflect.Int8, reflect.Int16, reflect.Int32, reflect.Int64, reflect.Uint, reflect.Uint8,
		reflect.Uint16, reflect.Uint32, reflect.Uint64:
		return "an integer"
	default:
		return "a " + k.String()
	}
}

func fieldErrors(ve validator.ValidationErrors) []identity.FieldError {
	out := make([]identity.FieldError, 0, len(ve))
	for _, fe := range ve {
		out = append(out, identity.FieldError{Field: fieldPath(fe.Namespace()), Message: message(fe)})
	}
	return out
}

// fieldPath turns the validator's "dto.decisions[0].purpose" into "decisions[0].purpose".
func fieldPath(ns string) string {
	if i := strings.IndexByte(ns, '.'); i >= 0 {
		return ns[i+1:]
	}
	return ns
}

func message(fe validator.FieldError) string {
	switch fe.Tag() {
	case "required":
		return "is required"
	case "max":
		if fe.Kind() == reflect.String {
			return "at most " + fe.Param() + " characters"
		}
		if fe.Kind() == reflect.Slice || fe.Kind() == reflect.Map {
			return "at most " + fe.Param() + " items"
		}
		return "at most " + fe.Param()
	case "min":
		if fe.Kind() == reflect.String {
			return "at least " + fe.Param() + " characters"
		}
		if fe.Kind() == reflect.Slice || fe.Kind() == reflect.Map {
			return "at least " + fe.Param() + " items"
		}
		return "at least " + fe.Param()
	case "oneof":
		return "must be one of " + strings.ReplaceAll(fe.Param(), " ", ", ")
	case "email":
		return "must be an email address"
	case "url", "http_url":
		return "must be an http(s) URL"
	case "hexadecimal":
		return "must be hexadecimal"
	case "len":
		if fe.Kind() == reflect.Slice || fe.Kind() == reflect.Map {
			return "must have exactly " + fe.Param() + " items"
		}
		return "must be exactly " + fe.Param() + " characters"
	case "gte":
		return "must be at least " + fe.Param()
	case "lte":
		return "must be at most " + fe.Param()
	default:
		return "is not valid (" + fe.Tag() + ")"
	}
}

// SentOnly keeps, of a validation error's fields, those a patch body sent (its non-nil
// pointer and map members, by JSON name). A patch's DomainCheck applies it to an empty
// object and checks that, which would otherwise be told that the members the patch leaves
// alone are missing. For this to be right, a rule of the object that reads two fields must
// not fail for the one it does not name being empty (that one may be stored), or must wait
// for the service. Other errors pass unchanged.
func SentOnly(patch any, err error) error {
	var e *identity.Error
	if !errors.As(err, &e) || e.Code != identity.EInvalid {
		return err
	}
	sent := map[string]bool{}
	v := reflect.Indirect(reflect.ValueOf(patch))
	for i := range v.NumField() {
		f, sf := v.Field(i), v.Type().Field(i)
		if sf.IsExported() && (f.Kind() == reflect.Pointer || f.Kind() == reflect.Map) && !f.IsNil() {
			sent[jsonName(sf)] = true
		}
	}
	var kept []identity.FieldError
	for _, f := range e.Fields {
		if sent[topField(f.Field)] {
			kept = append(kept, f)
		}
	}
	if len(kept) == 0 {
		return nil
	}
	return identity.FieldErrors(e.Message, kept...)
}

// topField is the member of the body a field path starts with: "texts" of "texts.fi.title",
// "scopes" of "scopes[0]".
func topField(path string) string {
	if i := strings.IndexAny(path, ".["); i >= 0 {
		return path[:i]
	}
	return path
}
