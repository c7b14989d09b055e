package mail

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"strings"
	"testing"
	"time"
)

func discardLogger() *slog.Logger { return slog.New(slog.NewTextHandler(io.Discard, nil)) }

func TestMailboxKeepsNewestFirst(t *testing.T) {
	box := NewMailbox(discardLogger(), 3)
	ctx := context.Background()
	for i := range 5 {
		m := Message{To: fmt.Sprintf("p%d@example.fi", i), Subject: fmt.Sprintf("viesti %d", i), Text: "x"}
		if err := box.Send(ctx, m); err != nil {
			t.Fatal(err)
		}
	}
	list := box.List()
	if len(list) != 3 {
		t.Fatalf("kept %d, want 3", len(list))
	}
	for i, want := range []string{"viesti 4", "viesti 3", "viesti 2"} {
		if list[i].Subject != want {
			t.Errorf("List()[%d] = %q, want %q", i, list[i].Subject, want)
		}
		if list[i].ID == "" || list[i].Time.IsZero() {
			t.Errorf("List()[%d] has no id or time", i)
		}
	}
	got, ok := box.Get(list[1].ID)
	if !ok || got.Subject != "viesti 3" {
		t.Fatalf("Get = %+v, %v", got, ok)
	}
	if _, ok := box.Get("nonexistent"); ok {
		t.Fatal("Get found a message that was never kept")
	}
	// List is a copy: changing it does not change the mailbox.
	list[0].Subject = "changed"
	if box.List()[0].Subject != "viesti 4" {
		t.Fatal("List shares memory with the mailbox")
	}
}

func TestMailboxDefaultSize(t *testing.T) {
	box := NewMailbox(discardLogger(), 0)
	for range DefaultMailboxSize + 10 {
		if err := box.Send(context.Background(), Message{To: "a@example.fi", Subject: "s", Text: "t"}); err != nil {
			t.Fatal(err)
		}
	}
	if n := len(box.List()); n != DefaultMailboxSize {
		t.Fatalf("kept %d, want %d", n, DefaultMailboxSize)
	}
}

func TestMailboxLogsNoPersonalData(t *testing.T) {
	var buf bytes.Buffer
	box := NewMailbox(slog.New(slog.NewJSONHandler(&buf, nil)), 0)
	box.now = func() time.Time { return time.Unix(0, 0) }
	m := Message{
		To: "Matti Meikäläinen <Matti.Meikalainen@Example.FI>", Subject: "Salasanan vaihto: Matti",
		Text: "Linkki: https://lupa.example/reset?t=secret", Language: "fi",
	}
	if err := box.Send(context.Background(), m); err != nil {
		t.Fatal(err)
	}
	line := buf.String()
	for _, personal := range []string{"Matti", "matti", "Meik", "Salasanan", "secret", "reset"} {
		if strings.Contains(line, personal) {
			t.Errorf("log line contains %q: %s", personal, line)
		}
	}
	var rec map[string]any
	if err := json.Unmarshal(buf.Bytes(), &rec); err != nil {
		t.Fatalf("not one JSON line: %v: %s", err, line)
	}
	id := box.List()[0].ID
	if rec["id"] != id || rec["language"] != "fi" || rec["to_domain"] != "example.fi" ||
		!strings.Contains(fmt.Sprint(rec["hint"]), "/dev/mailbox") {
		t.Fatalf("log record %v", rec)
	}
	if strings.Count(strings.TrimSpace(line), "\n") != 0 {
		t.Fatalf("more than one log line: %s", line)
	}
}
