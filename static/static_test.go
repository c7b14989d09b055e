package static_test

import (
	"bytes"
	"compress/gzip"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"testing"

	"github.com/lupa-cmp/lupa/static"
)

// sizeBudget is the most the widget may weigh: gzip -9 of the JS plus the CSS.
const sizeBudget = 8192

func read(t *testing.T, name string) []byte {
	t.Helper()
	b, err := fs.ReadFile(static.Files, name)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// TestGenerateReproducible runs the generator into a temporary directory (with a stale file
// in it) and requires byte-identical output to the committed dist/ and build_gen.go: the
// build is reproducible and the committed files are current.
func TestGenerateReproducible(t *testing.T) {
	if testing.Short() {
		t.Skip("runs the generator")
	}
	dir := t.TempDir()
	out := filepath.Join(dir, "dist")
	if err := os.MkdirAll(out, 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(out, "widget.00000000.js"), []byte("stale"), 0o644); err != nil {
		t.Fatal(err)
	}
	gen := filepath.Join(dir, "build_gen.go")
	cmd := exec.Command("go", "run", "./internal/build", "-out", out, "-gen", gen)
	if b, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("generator: %v\n%s", err, b)
	}

	want, err := os.ReadFile("build_gen.go")
	if err != nil {
		t.Fatal(err)
	}
	if got, _ := os.ReadFile(gen); !bytes.Equal(got, want) {
		t.Errorf("build_gen.go differs from a fresh build: run go generate ./static\n%s", got)
	}
	names := func(dir string) []string {
		es, err := os.ReadDir(dir)
		if err != nil {
			t.Fatal(err)
		}
		var n []string
		for _, e := range es {
			n = append(n, e.Name())
		}
		return n
	}
	if got, want := names(out), names("dist"); !slices.Equal(got, want) {
		t.Fatalf("fresh build has files %v, committed dist/ has %v (stale files must be removed)", got, want)
	}
	for _, n := range names("dist") {
		a, _ := os.ReadFile(filepath.Join(out, n))
		b, _ := os.ReadFile(filepath.Join("dist", n))
		if !bytes.Equal(a, b) {
			t.Errorf("%s differs from a fresh build", n)
		}
	}
}

// TestFilesAndNames: Files holds exactly the JS and the CSS, each named by its content hash,
// and the JS knows its Build id and its stylesheet's name.
func TestFilesAndNames(t *testing.T) {
	var got []string
	if err := fs.WalkDir(static.Files, ".", func(p string, d fs.DirEntry, err error) error {
		if err == nil && !d.IsDir() {
			got = append(got, p)
		}
		return err
	}); err != nil {
		t.Fatal(err)
	}
	want := []string{static.WidgetCSS, static.WidgetJS, static.RegisterJS}
	slices.Sort(want)
	if !slices.Equal(got, want) {
		t.Fatalf("Files = %v, want %v", got, want)
	}
	if !regexp.MustCompile(`^[0-9a-f]{16}$`).MatchString(static.Build) {
		t.Errorf("Build = %q, want 16 hex digits", static.Build)
	}
	for _, n := range want {
		s := sha256.Sum256(read(t, n))
		if h := hex.EncodeToString(s[:])[:8]; !strings.Contains(n, "."+h+".") {
			t.Errorf("%s: name does not carry the content hash %s", n, h)
		}
	}
	js := string(read(t, static.WidgetJS))
	for _, s := range []string{`"` + static.Build + `"`, `"` + static.WidgetCSS + `"`, `"` + static.RegisterJS + `"`} {
		if !strings.Contains(js, s) {
			t.Errorf("the bundle lacks %s", s)
		}
	}
	if i := strings.Index(js, `performance.mark("lupa:start")`); i < 0 || i > 10 {
		t.Errorf("performance.mark(\"lupa:start\") is not the first statement (at %d): %.60s", i, js)
	}
}

func gz(t *testing.T, b []byte) int {
	var buf bytes.Buffer
	w, err := gzip.NewWriterLevel(&buf, gzip.BestCompression)
	if err != nil {
		t.Fatal(err)
	}
	w.Write(b)
	w.Close()
	return buf.Len()
}

// registerBudget is issue 4's bar for the registration widget's loader: gzip -9 ≤ 4,096.
const registerBudget = 4096

func TestRegisterSize(t *testing.T) {
	n := gz(t, read(t, static.RegisterJS))
	t.Logf("gzip -9: register loader %d bytes (budget %d)", n, registerBudget)
	if n > registerBudget {
		t.Errorf("gzip -9 of the registration loader is %d bytes, over the %d budget", n, registerBudget)
	}
}

func TestSize(t *testing.T) {
	js, css := gz(t, read(t, static.WidgetJS)), gz(t, read(t, static.WidgetCSS))
	t.Logf("gzip -9: js %d + css %d = %d bytes (budget %d)", js, css, js+css, sizeBudget)
	if js+css > sizeBudget {
		t.Errorf("gzip -9 of JS + CSS is %d bytes, over the %d budget", js+css, sizeBudget)
	}
}

// TestCSPSafe: the bundle never evaluates strings as code or parses strings as HTML, and
// writes no inline styles or handlers into markup.
func TestCSPSafe(t *testing.T) {
	js := string(read(t, static.WidgetJS)) + "\n" + string(read(t, static.RegisterJS))
	for _, re := range []string{
		`\beval\s*\(`, `new Function`, `\bFunction\s*\(`, `setTimeout\("`, `setInterval\("`,
		`innerHTML`, `outerHTML`, `insertAdjacentHTML`, `document\.write`, `createContextualFragment`, `DOMParser`,
		`setAttribute\("style"`, `setAttribute\("on`, `style:`, `cssText`, `<style`,
	} {
		if loc := regexp.MustCompile(re).FindStringIndex(js); loc != nil {
			t.Errorf("bundle matches %s: …%s…", re, js[max(0, loc[0]-40):min(len(js), loc[1]+40)])
		}
	}
	css := string(read(t, static.WidgetCSS))
	for _, s := range []string{"@import", "url("} {
		if strings.Contains(css, s) {
			t.Errorf("stylesheet contains %s", s)
		}
	}
	for _, s := range []string{"prefers-color-scheme:dark", "prefers-reduced-motion:reduce", ":focus-visible"} {
		if !strings.Contains(css, s) {
			t.Errorf("stylesheet lacks %s", s)
		}
	}
}

// TestStrings: fi, sv and en have the same keys, none empty, with the {p} placeholders where
// they belong, and every key the interface reads exists.
func TestStrings(t *testing.T) {
	b, err := os.ReadFile("widget/src/strings.json")
	if err != nil {
		t.Fatal(err)
	}
	var all map[string]map[string]string
	if err := json.Unmarshal(b, &all); err != nil {
		t.Fatal(err)
	}
	keys := func(m map[string]string) []string {
		var k []string
		for key, v := range m {
			k = append(k, key)
			if strings.TrimSpace(v) == "" {
				t.Errorf("empty string %q", key)
			}
		}
		slices.Sort(k)
		return k
	}
	en := keys(all["en"])
	for _, lang := range []string{"fi", "sv"} {
		if got := keys(all[lang]); !slices.Equal(got, en) {
			t.Errorf("%s keys %v, en keys %v", lang, got, en)
		}
		same := 0
		for k, v := range all[lang] {
			if v == all["en"][k] {
				same++
			}
		}
		if same > 0 {
			t.Errorf("%s: %d strings identical to English", lang, same)
		}
	}
	for lang, m := range all {
		for _, k := range []string{"gpc", "ask"} {
			if !strings.Contains(m[k], "{p}") {
				t.Errorf("%s.%s lacks {p}", lang, k)
			}
		}
	}
	ui, err := os.ReadFile("widget/src/ui.js")
	if err != nil {
		t.Fatal(err)
	}
	used := regexp.MustCompile(`\bT\.(\w+)`).FindAllStringSubmatch(string(ui), -1)
	// Buttons take their label from T[action]; storage kinds from T[kind].
	for _, k := range []string{"accept", "reject", "settings", "save", "cookie", "local_storage", "session_storage", "pixel"} {
		used = append(used, []string{"", k})
	}
	for _, u := range used {
		if _, ok := all["en"][u[1]]; !ok {
			t.Errorf("ui.js reads T.%s, which no language defines", u[1])
		}
	}
}

// TestStub: the stub is one line, its CSP hash is right, and docs/banner.md shows both as
// they are now.
func TestStub(t *testing.T) {
	if strings.ContainsAny(static.StubJS, "\n\r") {
		t.Error("StubJS has a line break")
	}
	for _, s := range []string{"lupa_consent", "wait_for_update:500", `"consent","default"`, "security_storage"} {
		if !strings.Contains(static.StubJS, s) {
			t.Errorf("StubJS lacks %s", s)
		}
	}
	sum := sha256.Sum256([]byte(static.StubJS))
	if want := "'sha256-" + base64.StdEncoding.EncodeToString(sum[:]) + "'"; static.StubCSPHash != want {
		t.Errorf("StubCSPHash = %s, want %s", static.StubCSPHash, want)
	}
	doc, err := os.ReadFile("../docs/banner.md")
	if err != nil {
		t.Fatal(err)
	}
	for _, s := range []string{"<script>" + static.StubJS + "</script>", static.StubCSPHash} {
		if !strings.Contains(string(doc), s) {
			t.Errorf("docs/banner.md does not show the current %.40s…: update it", s)
		}
	}
}
