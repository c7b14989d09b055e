package mail

import (
	"context"
	"crypto/rand"
	"log/slog"
	"sync"
	"time"
)

// DefaultMailboxSize is how many messages a Mailbox keeps when not told otherwise.
const DefaultMailboxSize = 100

// Stored is a message kept by a Mailbox.
type Stored struct {
	ID   string
	Time time.Time
	Message
}

// Mailbox is the development Sender: it keeps the newest messages in memory, to be shown
// on a developer page, and sends nothing. It holds messages of this process only, so it
// is no use behind a load balancer; production uses SMTP.
type Mailbox struct {
	log  *slog.Logger
	size int
	now  func() time.Time

	mu   sync.Mutex
	msgs []Stored // oldest first; List reverses
}

// NewMailbox returns a Mailbox that keeps the last size messages (DefaultMailboxSize when
// size ≤ 0) and logs one line per message to log.
func NewMailbox(log *slog.Logger, size int) *Mailbox {
	if size <= 0 {
		size = DefaultMailboxSize
	}
	return &Mailbox{log: log, size: size, now: time.Now}
}

// Send keeps m. It refuses what SMTP would refuse, so that development finds those bugs.
func (b *Mailbox) Send(ctx context.Context, m Message) error {
	to, err := m.validate()
	if err != nil {
		return err
	}
	s := Stored{ID: rand.Text(), Time: b.now(), Message: m}
	b.keep(s)
	// Only the recipient's domain: the address, the subject and the body are personal
	// data (a subject can say what the person did), and logs must hold none.
	b.log.InfoContext(ctx, "mail kept in the development mailbox",
		"id", s.ID, "language", m.Language, "to_domain", domainOf(to.Address),
		"hint", "open /dev/mailbox")
	return nil
}

func (b *Mailbox) keep(s Stored) {
	b.mu.Lock()
	defer b.mu.Unlock()
	if len(b.msgs) == b.size {
		// Shift rather than grow: the slice never exceeds size, so memory stays bounded
		// however long the process runs.
		copy(b.msgs, b.msgs[1:])
		b.msgs = b.msgs[:len(b.msgs)-1]
	}
	b.msgs = append(b.msgs, s)
}

// List returns the kept messages, newest first.
func (b *Mailbox) List() []Stored {
	b.mu.Lock()
	defer b.mu.Unlock()
	out := make([]Stored, len(b.msgs))
	for i, s := range b.msgs {
		out[len(b.msgs)-1-i] = s
	}
	return out
}

// Get returns the kept message with the given id.
func (b *Mailbox) Get(id string) (Stored, bool) {
	b.mu.Lock()
	defer b.mu.Unlock()
	for _, s := range b.msgs {
		if s.ID == id {
			return s, true
		}
	}
	return Stored{}, false
}
