package receiver

import (
	"bytes"
	"crypto/rand"
	"encoding/base64"
	"fmt"
	"net/http"
	"testing"
	"time"

	standardwebhooks "github.com/standard-webhooks/standard-webhooks/libraries/go"
)

// TestReceiver: the receiver accepts only correctly signed messages, ignores a webhook-id it
// has seen, flags a sequence that goes backwards, keeps the last decision per subject and
// purpose, and fails or drops connections when told to.
func TestReceiver(t *testing.T) {
	key := make([]byte, 32)
	_, _ = rand.Read(key)
	secret := "whsec_" + base64.StdEncoding.EncodeToString(key)
	r, err := New(secret)
	if err != nil {
		t.Fatal(err)
	}
	url, err := r.Start()
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()
	wh, _ := standardwebhooks.NewWebhook(secret)
	at := time.Now().Add(-50 * time.Millisecond).UTC()
	post := func(id string, seq int, decision string, sign bool) (int, error) {
		body := fmt.Appendf(nil, `{"type":"consent.updated","schema_version":1,"timestamp":%q,"data":{"subject":"ps_1",`+
			`"purpose":"analytics","decision":%q,"sequence":%d,"event_id":"ev%d"}}`, at.Format(time.RFC3339Nano), decision, seq, seq)
		req, _ := http.NewRequest(http.MethodPost, url, bytes.NewReader(body))
		now := time.Now()
		req.Header.Set("webhook-id", id)
		req.Header.Set("webhook-timestamp", fmt.Sprint(now.Unix()))
		sig, _ := wh.Sign(id, now, body)
		if !sign {
			sig = "v1,AAAA"
		}
		req.Header.Set("webhook-signature", sig)
		res, err := http.DefaultClient.Do(req)
		if err != nil {
			return 0, err
		}
		res.Body.Close()
		return res.StatusCode, nil
	}
	for _, c := range []struct {
		id       string
		seq      int
		decision string
		sign     bool
		want     int
	}{
		{"msg_1", 1, "granted", true, 204},
		{"msg_2", 3, "withdrawn", true, 204},
		{"msg_2", 3, "withdrawn", true, 204}, // a retry: ignored
		{"msg_3", 2, "granted", true, 204},   // older than what came: flagged, not applied
		{"msg_4", 4, "granted", false, 401},  // a bad signature
	} {
		if got, err := post(c.id, c.seq, c.decision, c.sign); err != nil || got != c.want {
			t.Fatalf("%s seq %d: %d %v, want %d", c.id, c.seq, got, err, c.want)
		}
	}
	st := r.Stats()
	if st.Unique != 3 || st.Duplicates != 1 || st.BadSig != 1 || st.Problems != 1 {
		t.Fatalf("stats %+v", st)
	}
	if s := r.States()[Key{"ps_1", "analytics"}]; s.Sequence != 3 || s.Decision != "withdrawn" {
		t.Fatalf("state %+v", s)
	}
	if !r.Delivered("ev1") || r.Delivered("ev4") {
		t.Fatal("delivered events")
	}
	if lag, n := r.LagQuantile(1); n != 3 || lag < 50*time.Millisecond {
		t.Fatalf("lags: %d, max %s", n, lag)
	}
	r.SetMode(Fail)
	if got, _ := post("msg_5", 5, "granted", true); got != http.StatusServiceUnavailable {
		t.Fatalf("failing: %d", got)
	}
	r.SetMode(Down)
	if _, err := post("msg_6", 6, "granted", true); err == nil {
		t.Fatal("down: answered")
	}
	r.SetMode(Up)
	if got, _ := post("msg_7", 7, "granted", true); got != 204 || r.Stats().Unique != 4 {
		t.Fatalf("up again: %d %+v", got, r.Stats())
	}
}
