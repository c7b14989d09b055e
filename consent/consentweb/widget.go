package consentweb

import (
	"bytes"
	"compress/gzip"
	"crypto/rand"
	"encoding/base64"
	"io/fs"
	"mime"
	"net/http"
	"path"
	"strings"

	"github.com/gin-gonic/gin"

	"github.com/lupa-cmp/lupa/consent"
	"github.com/lupa-cmp/lupa/identity"
	"github.com/lupa-cmp/lupa/identity/identityweb"
	"github.com/lupa-cmp/lupa/templates"
)

// Widget serves the banner's built files and the demo shop that shows them.
type Widget struct {
	h     *Handlers
	files map[string]staticFile
	js    string // the current bundle's file name, with its content hash
	stub  string
}

type staticFile struct {
	contentType string
	raw, gz     []byte
}

// NewWidget loads the built widget files (kept in memory, gzipped once). js names the
// current bundle; stub is the Consent Mode stub that pages put inline.
func NewWidget(h *Handlers, dist fs.FS, js, stub string) (*Widget, error) {
	w := &Widget{h: h, files: map[string]staticFile{}, js: js, stub: stub}
	err := fs.WalkDir(dist, ".", func(name string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() {
			return err
		}
		raw, err := fs.ReadFile(dist, name)
		if err != nil {
			return err
		}
		var buf bytes.Buffer
		zw, _ := gzip.NewWriterLevel(&buf, gzip.BestCompression)
		_, _ = zw.Write(raw)
		_ = zw.Close()
		w.files[path.Base(name)] = staticFile{contentType: mime.TypeByExtension(path.Ext(name)), raw: raw, gz: buf.Bytes()}
		return nil
	})
	return w, err
}

// Files returns the widget files by name, for keeping the build as evidence.
func (w *Widget) Files() map[string]string {
	out := make(map[string]string, len(w.files))
	for name, f := range w.files {
		out[name] = string(f.raw)
	}
	return out
}

// Loader answers the one URL sites put in their tag with the current bundle's
// content-hashed URL. The redirect is cached briefly, the bundle for a year.
func (w *Widget) Loader(c *gin.Context) {
	c.Header("Cache-Control", "public, max-age=300")
	c.Header("Location", "/v1/static/"+w.js)
	c.Status(http.StatusFound)
}

// Static serves a built file. Names carry their content hash, so they never change.
func (w *Widget) Static(c *gin.Context) {
	f, ok := w.files[c.Param("file")]
	if !ok {
		identityweb.NoRoute(c)
		return
	}
	h := c.Writer.Header()
	h.Set("Cache-Control", "public, max-age=31536000, immutable")
	// Sites that isolate themselves (Cross-Origin-Embedder-Policy) may still load it.
	h.Set("Cross-Origin-Resource-Policy", "cross-origin")
	h.Set("Access-Control-Allow-Origin", "*")
	h.Set("Vary", "Accept-Encoding")
	body := f.raw
	if strings.Contains(c.GetHeader("Accept-Encoding"), "gzip") {
		h.Set("Content-Encoding", "gzip")
		body = f.gz
	}
	c.Data(http.StatusOK, f.contentType, body)
}

// GPC publishes Lupa's own Global Privacy Control support: its pages honour the signal.
func (w *Widget) GPC(c *gin.Context) {
	c.Header("Cache-Control", "public, max-age=86400")
	c.JSON(http.StatusOK, gin.H{"gpc": true, "lastUpdate": "2026-11-26"})
}

var demoLanguages = []struct{ code, label, path string }{
	{"en", "English", "/demo"}, {"fi", "Suomi", "/demo/fi"}, {"sv", "Svenska", "/demo/sv"},
}

// Demo serves the demo web shop (/demo, /demo/fi, /demo/sv) with the demo tenant's
// banner, when the demo tenant exists.
func (w *Widget) Demo(c *gin.Context) {
	lang := strings.TrimPrefix(c.Param("lang"), "/")
	if lang == "" {
		lang = "en"
	}
	text, ok := templates.DemoTexts[lang]
	if !ok {
		identityweb.NoRoute(c)
		return
	}
	p, err := w.demoProperty(c)
	if err != nil {
		w.h.api.Fail(c, err)
		return
	}
	nonce := make([]byte, 16)
	_, _ = rand.Read(nonce)
	page := templates.DemoPage{Lang: lang, PropertyKey: p.PublicKey, WidgetURL: "/v1/widget.js", Stub: w.stub,
		Nonce: base64.StdEncoding.EncodeToString(nonce), Text: text}
	for _, l := range demoLanguages {
		page.Languages = append(page.Languages, templates.DemoLink{Href: l.path, Label: l.label, Current: l.code == lang})
	}
	// The page keeps to the CSP lines docs/banner.md gives sites: scripts and styles from
	// Lupa, and the inline stub by nonce.
	c.Header("Content-Security-Policy", "default-src 'self'; script-src 'self' 'nonce-"+page.Nonce+"'; style-src 'self' 'nonce-"+
		page.Nonce+"'; img-src 'self' data:; connect-src 'self'; frame-ancestors 'none'; base-uri 'none'")
	c.Header("Cache-Control", "no-store")
	c.Status(http.StatusOK)
	c.Header("Content-Type", "text/html; charset=utf-8")
	if err := templates.Demo(page).Render(c.Request.Context(), c.Writer); err != nil {
		w.h.api.Log.Error("render demo", "err", err)
	}
}

func (w *Widget) demoProperty(c *gin.Context) (*identity.Property, error) {
	ctx := c.Request.Context()
	t, err := w.h.ids.TenantBySlug(ctx, consent.DemoSlug)
	if err != nil {
		return nil, err
	}
	props, err := w.h.ids.Properties(ctx, t.ID)
	if err != nil {
		return nil, err
	}
	for _, p := range props {
		if p.Kind == identity.PropertyWeb && p.Status == "active" {
			return p, nil
		}
	}
	return nil, identity.NotFound("property")
}
