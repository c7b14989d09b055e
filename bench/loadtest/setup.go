package main

import (
	"bytes"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"net/http"
	"os"
	"regexp"
	"strconv"
	"strings"
	"syscall"
	"time"
)

var (
	reAdminKey = regexp.MustCompile(`Admin API key \(shown once\):\s+(sk_\S+)`)
	reWebShop  = regexp.MustCompile(`Web shop property key:\s+(pk_\S+)\s+\(allowed origins: \[([^\]]*)\]\)`)
	reRunning  = regexp.MustCompile(`Lupa is running at (\S+)`)
)

// extraDevicePurposes are added next to the demo's device-level purposes so that a banner
// asks five.
var extraDevicePurposes = []struct{ key, fi, sv, en string }{
	{"functional", "Toiminnalliset evästeet: muistamme kielesi ja valintasi.", "Funktionella kakor: vi minns ditt språk och dina val.", "Functional cookies: we remember your language and choices."},
	{"video_embeds", "Upotetut videot: videopalvelu voi tallentaa evästeitä laitteellesi.", "Inbäddade videor: videotjänsten kan lagra kakor på din enhet.", "Embedded videos: the video service may store cookies on your device."},
	{"ab_testing", "A/B-testaus: kokeilemme eri versioita sivuista ja mittaamme tuloksia.", "A/B-testning: vi provar olika versioner av sidor och mäter resultatet.", "A/B testing: we try different versions of pages and measure the results."},
	{"chat_widget", "Asiakaspalveluchat: chat muistaa keskustelusi laitteellasi.", "Kundtjänstchatt: chatten minns din konversation på enheten.", "Support chat: the chat remembers your conversation on this device."},
}

// setupCmd waits for a freshly started `lupa serve`, reads the demo tenant's keys from its
// stdout, adds device-level purposes through the admin API until a banner asks five,
// records one interaction to check that everything is in place, and writes the target file.
func setupCmd(args []string) error {
	fs := flag.NewFlagSet("setup", flag.ExitOnError)
	serveOut := fs.String("serve-out", "", "file that receives lupa serve's stdout")
	pid := fs.Int("pid", 0, "pid of lupa serve, to stop waiting when it dies")
	out := fs.String("out", "", "target file to write")
	want := fs.Int("device-purposes", 5, "device-level purposes each banner decision covers")
	addr := fs.String("addr", "", "host:port lupa listens on (default: from its stdout)")
	_ = fs.Parse(args)

	var text string
	deadline := time.Now().Add(90 * time.Second)
	for {
		b, _ := os.ReadFile(*serveOut)
		text = string(b)
		if reRunning.MatchString(text) {
			break
		}
		if *pid > 0 && syscall.Kill(*pid, 0) != nil {
			return fmt.Errorf("lupa serve (pid %d) exited; its stdout:\n%s", *pid, text)
		}
		if time.Now().After(deadline) {
			return errors.New("lupa serve did not start within 90 s")
		}
		time.Sleep(100 * time.Millisecond)
	}
	t := &target{}
	m := reAdminKey.FindStringSubmatch(text)
	w := reWebShop.FindStringSubmatch(text)
	if m == nil || w == nil {
		return fmt.Errorf("no demo tenant keys in lupa's stdout (was the database fresh?):\n%s", text)
	}
	t.AdminKey, t.PropertyKey = m[1], w[1]
	t.Origin = strings.Fields(w[2])[0]
	base := reRunning.FindStringSubmatch(text)[1]
	t.Addr = strings.TrimPrefix(strings.TrimPrefix(base, "http://"), "localhost")
	if strings.HasPrefix(t.Addr, ":") {
		t.Addr = "127.0.0.1" + t.Addr
	}
	if *addr != "" {
		t.Addr = *addr
	}
	api := &adminAPI{base: "http://" + t.Addr, key: t.AdminKey}
	if err := api.waitReady(); err != nil {
		return err
	}

	purposes, err := api.purposes()
	if err != nil {
		return err
	}
	var device []string
	for _, p := range purposes {
		if p.LegalBasis == "consent" && p.LatestVersion > 0 {
			if p.Level == "device" {
				device = append(device, p.Key)
			} else {
				t.Person = append(t.Person, purposeRef{Key: p.Key, Version: p.LatestVersion})
			}
		}
	}
	for _, x := range extraDevicePurposes {
		if len(device) >= *want {
			break
		}
		if err := api.createDevicePurpose(x.key, x.fi, x.sv, x.en); err != nil {
			return err
		}
		device = append(device, x.key)
	}
	if len(device) < *want {
		return fmt.Errorf("only %d device-level purposes", len(device))
	}
	for _, k := range device[:*want] {
		ref, err := api.published(k)
		if err != nil {
			return err
		}
		t.Device = append(t.Device, ref)
	}
	for i, p := range t.Person {
		if t.Person[i], err = api.published(p.Key); err != nil {
			return err
		}
	}

	// One interaction end to end, so that a wrong set-up fails here and not as errors later.
	var in bytes.Buffer
	in.WriteString(`{"method":"banner_custom","language":"fi","decisions":[`)
	for i, p := range t.Device {
		if i > 0 {
			in.WriteByte(',')
		}
		fmt.Fprintf(&in, `{"purpose":%q,"version":%d,"decision":"granted","text_hash":%q}`, p.Key, p.Version, p.TextHash)
	}
	in.WriteString(`]}`)
	req, _ := http.NewRequest("POST", api.base+"/v1/consents?property="+t.PropertyKey, &in)
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("Origin", t.Origin)
	req.Header.Set("Idempotency-Key", "bench-setup-"+strconv.FormatInt(time.Now().UnixNano(), 36))
	if _, err := api.send(req, http.StatusCreated, nil); err != nil {
		return fmt.Errorf("a first banner interaction: %w", err)
	}

	b, _ := json.MarshalIndent(t, "", "  ")
	if err := os.WriteFile(*out, b, 0o600); err != nil {
		return err
	}
	keys := make([]string, len(t.Device))
	for i, p := range t.Device {
		keys[i] = p.Key
	}
	logf("set up %s: device-level purposes %s", t.Addr, strings.Join(keys, ", "))
	return nil
}

type adminAPI struct {
	base, key string
	client    http.Client
}

func (a *adminAPI) send(req *http.Request, want int, out any) ([]byte, error) {
	if req.Header.Get("Authorization") == "" && a.key != "" && strings.Contains(req.URL.Path, "/admin/") {
		req.Header.Set("Authorization", "Bearer "+a.key)
	}
	resp, err := a.client.Do(req)
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		return nil, err
	}
	if resp.StatusCode != want {
		return nil, fmt.Errorf("%s %s: %w", req.Method, req.URL.Path, statusError(resp.StatusCode, b))
	}
	if out != nil {
		return b, json.Unmarshal(b, out)
	}
	return b, nil
}

func (a *adminAPI) call(method, path string, body any, want int, out any) error {
	var r io.Reader
	if body != nil {
		b, err := json.Marshal(body)
		if err != nil {
			return err
		}
		r = bytes.NewReader(b)
	}
	req, err := http.NewRequest(method, a.base+path, r)
	if err != nil {
		return err
	}
	if body != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	_, err = a.send(req, want, out)
	return err
}

func (a *adminAPI) waitReady() error {
	deadline := time.Now().Add(60 * time.Second)
	for {
		resp, err := a.client.Get(a.base + "/readyz")
		if err == nil {
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				return nil
			}
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("%s/readyz did not answer 200 within 60 s (last error %v)", a.base, err)
		}
		time.Sleep(100 * time.Millisecond)
	}
}

type purposeOut struct {
	Key           string `json:"key"`
	Level         string `json:"level"`
	LegalBasis    string `json:"legal_basis"`
	LatestVersion int    `json:"latest_version"`
}

func (a *adminAPI) purposes() ([]purposeOut, error) {
	var out struct {
		Items []purposeOut `json:"items"`
	}
	err := a.call("GET", "/v1/admin/purposes", nil, http.StatusOK, &out)
	return out.Items, err
}

func (a *adminAPI) createDevicePurpose(key, fi, sv, en string) error {
	if err := a.call("POST", "/v1/admin/purposes", map[string]any{"key": key, "level": "device",
		"legal_basis": "consent", "reask_months": 12}, http.StatusCreated, nil); err != nil {
		return err
	}
	title := strings.SplitN(en, ":", 2)[0]
	texts := map[string]map[string]string{
		"fi": {"title": strings.SplitN(fi, ":", 2)[0], "description": fi},
		"sv": {"title": strings.SplitN(sv, ":", 2)[0], "description": sv},
		"en": {"title": title, "description": en},
	}
	if err := a.call("POST", "/v1/admin/purposes/"+key+"/versions", map[string]any{"texts": texts,
		"details": map[string]any{"data_categories": []string{"cookie identifiers"}, "retention": "12 months."}},
		http.StatusCreated, nil); err != nil {
		return err
	}
	return a.call("POST", "/v1/admin/purposes/"+key+"/versions/1/publish", nil, http.StatusOK, nil)
}

// published returns the latest published version of a purpose and its Finnish text hash.
func (a *adminAPI) published(key string) (purposeRef, error) {
	var p purposeOut
	if err := a.call("GET", "/v1/admin/purposes/"+key, nil, http.StatusOK, &p); err != nil {
		return purposeRef{}, err
	}
	var v struct {
		Number     int               `json:"number"`
		TextHashes map[string]string `json:"text_hashes"`
	}
	if err := a.call("GET", "/v1/admin/purposes/"+key+"/versions/"+strconv.Itoa(p.LatestVersion), nil, http.StatusOK, &v); err != nil {
		return purposeRef{}, err
	}
	return purposeRef{Key: key, Version: v.Number, TextHash: v.TextHashes["fi"]}, nil
}
