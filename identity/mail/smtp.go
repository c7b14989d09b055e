package mail

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"net"
	netmail "net/mail"
	"net/smtp"
	"net/textproto"
	"strconv"
	"time"
)

// TLSMode says how the connection to the SMTP server is protected.
type TLSMode string

const (
	// StartTLS connects in clear and upgrades with STARTTLS before anything else is said.
	// A server that does not offer STARTTLS is refused: the messages carry sign-in and
	// reset links, which are as much credentials as the SMTP password is.
	StartTLS TLSMode = "starttls"
	// ImplicitTLS speaks TLS from the first byte (SMTPS, port 465).
	ImplicitTLS TLSMode = "tls"
	// NoTLS is for a test server on the local machine: clear text, and never AUTH.
	NoTLS TLSMode = "none"
)

// Default timeouts.
const (
	DefaultDialTimeout = 10 * time.Second
	DefaultSendTimeout = 30 * time.Second
)

// ErrNoTLS means the server offered no STARTTLS in StartTLS mode. Nothing was sent.
var ErrNoTLS = errors.New("mail: server does not offer STARTTLS; refusing to send in clear")

// SMTPConfig configures an SMTP sender. Zero values take the defaults named.
type SMTPConfig struct {
	Host     string
	Port     int // 587 for StartTLS, 465 for ImplicitTLS, 25 for NoTLS
	Username string
	Password string
	From     string  // the sender address, optionally with a display name
	TLS      TLSMode // StartTLS

	TLSConfig   *tls.Config   // extra roots for a private CA; ServerName defaults to Host
	HelloName   string        // the EHLO name; the domain of From
	DialTimeout time.Duration // DefaultDialTimeout
	SendTimeout time.Duration // DefaultSendTimeout: one whole message, from dial to QUIT
}

// SMTP sends each message over its own connection to one submission server. Lupa's
// volume of mail is small and bursty, so a pool of connections would only add state that
// can go stale.
type SMTP struct {
	cfg  SMTPConfig
	from *netmail.Address
	now  func() time.Time
}

// NewSMTP checks cfg and fills in its defaults.
func NewSMTP(cfg SMTPConfig) (*SMTP, error) {
	if cfg.TLS == "" {
		cfg.TLS = StartTLS
	}
	if err := checkConfig(cfg); err != nil {
		return nil, err
	}
	from, err := netmail.ParseAddress(cfg.From)
	if err != nil {
		return nil, fmt.Errorf("mail: From is not an email address: %w", err)
	}
	if cfg.Port == 0 {
		cfg.Port = defaultPort[cfg.TLS]
	}
	if cfg.HelloName == "" {
		cfg.HelloName = domainOf(from.Address)
	}
	if cfg.DialTimeout <= 0 {
		cfg.DialTimeout = DefaultDialTimeout
	}
	if cfg.SendTimeout <= 0 {
		cfg.SendTimeout = DefaultSendTimeout
	}
	return &SMTP{cfg: cfg, from: from, now: time.Now}, nil
}

var defaultPort = map[TLSMode]int{StartTLS: 587, ImplicitTLS: 465, NoTLS: 25}

func checkConfig(cfg SMTPConfig) error {
	switch {
	case cfg.Host == "":
		return errors.New("mail: SMTP host is empty")
	case cfg.Port < 0 || cfg.Port > 65535:
		return errors.New("mail: SMTP port out of range")
	case hasLineBreak(cfg.Host + cfg.From + cfg.HelloName + cfg.Username + cfg.Password):
		return errors.New("mail: line break in SMTP configuration")
	}
	if _, ok := defaultPort[cfg.TLS]; !ok {
		return fmt.Errorf("mail: unknown TLS mode %q (want starttls, tls or none)", cfg.TLS)
	}
	if cfg.Password != "" && cfg.Username == "" {
		return errors.New("mail: SMTP password without a username")
	}
	if cfg.TLS == NoTLS && cfg.Username != "" {
		return errors.New("mail: TLS mode none never authenticates; remove the credentials or use starttls")
	}
	return nil
}

// Send delivers m through the server. ctx and SendTimeout bound the whole exchange: when
// either ends, the connection is cut and the error wraps ctx's.
func (s *SMTP) Send(ctx context.Context, m Message) error {
	to, err := m.validate()
	if err != nil {
		return err
	}
	msg := compose(s.from, to, m, s.now())

	ctx, cancel := context.WithTimeout(ctx, s.cfg.SendTimeout)
	defer cancel()
	conn, err := s.dial(ctx)
	if err != nil {
		return s.fail(ctx, "connect", err)
	}
	defer conn.Close()
	// net/smtp knows no context: expiring the connection's deadline makes whatever read
	// or write is blocked return at once.
	stop := context.AfterFunc(ctx, func() { _ = conn.SetDeadline(time.Unix(1, 0)) })
	defer stop()

	if stage, err := s.exchange(conn, to.Address, msg); err != nil {
		return s.fail(ctx, stage, err)
	}
	return nil
}

// dial opens the TCP connection and, in ImplicitTLS mode, completes the TLS handshake.
func (s *SMTP) dial(ctx context.Context) (net.Conn, error) {
	d := net.Dialer{Timeout: s.cfg.DialTimeout}
	addr := net.JoinHostPort(s.cfg.Host, strconv.Itoa(s.cfg.Port))
	conn, err := d.DialContext(ctx, "tcp", addr)
	if err != nil || s.cfg.TLS != ImplicitTLS {
		return conn, err
	}
	tc := tls.Client(conn, s.tlsConfig())
	if err := tc.HandshakeContext(ctx); err != nil {
		conn.Close()
		return nil, err
	}
	return tc, nil
}

// exchange runs the SMTP dialogue on conn. It returns the stage that failed, for the
// error message.
func (s *SMTP) exchange(conn net.Conn, to string, msg []byte) (stage string, err error) {
	c, err := smtp.NewClient(conn, s.cfg.Host)
	if err != nil {
		return "greeting", err
	}
	defer c.Close()
	if err := c.Hello(s.cfg.HelloName); err != nil {
		return "EHLO", err
	}
	if stage, err := s.secure(c); err != nil {
		return stage, err
	}
	if err := c.Mail(s.from.Address); err != nil {
		return "MAIL FROM", err
	}
	if err := c.Rcpt(to); err != nil {
		return "RCPT TO", err
	}
	if err := data(c, msg); err != nil {
		return "DATA", err
	}
	// The message is accepted once DATA is; a failing QUIT loses nothing.
	_ = c.Quit()
	return "", nil
}

// secure upgrades to TLS when the mode asks for it and then authenticates, in that order,
// so that credentials never cross the network in clear.
func (s *SMTP) secure(c *smtp.Client) (stage string, err error) {
	if s.cfg.TLS == StartTLS {
		if ok, _ := c.Extension("STARTTLS"); !ok {
			return "STARTTLS", ErrNoTLS
		}
		if err := c.StartTLS(s.tlsConfig()); err != nil {
			return "STARTTLS", err
		}
	}
	if s.cfg.Username == "" {
		return "", nil
	}
	// PlainAuth itself refuses a connection without TLS unless the host is local; the
	// mode checks above are what make that refusal hold for local hosts too.
	if err := c.Auth(smtp.PlainAuth("", s.cfg.Username, s.cfg.Password, s.cfg.Host)); err != nil {
		return "AUTH", err
	}
	return "", nil
}

func data(c *smtp.Client, msg []byte) error {
	w, err := c.Data()
	if err != nil {
		return err
	}
	if _, err := w.Write(msg); err != nil {
		w.Close()
		return err
	}
	return w.Close()
}

func (s *SMTP) tlsConfig() *tls.Config {
	cfg := &tls.Config{}
	if s.cfg.TLSConfig != nil {
		cfg = s.cfg.TLSConfig.Clone()
	}
	if cfg.ServerName == "" {
		cfg.ServerName = s.cfg.Host
	}
	if cfg.MinVersion < tls.VersionTLS12 {
		cfg.MinVersion = tls.VersionTLS12
	}
	return cfg
}

// ServerError is a refusal by the SMTP server. Its message names the stage and the reply
// code only, because servers echo addresses in their reply text and errors end up in
// logs; the full reply stays reachable through errors.As on *textproto.Error.
type ServerError struct {
	Stage string
	Code  int
	reply *textproto.Error
}

func (e *ServerError) Error() string {
	return fmt.Sprintf("mail: server refused %s with %d", e.Stage, e.Code)
}

func (e *ServerError) Unwrap() error { return e.reply }

// Temporary reports a 4xx reply: the same message may succeed later.
func (e *ServerError) Temporary() bool { return e.Code >= 400 && e.Code < 500 }

// fail turns an error from one stage into the package's error: the context's when it has
// ended (the connection was cut because of it), a ServerError for an SMTP reply, and the
// network or TLS error otherwise.
func (s *SMTP) fail(ctx context.Context, stage string, err error) error {
	if ctxErr := ctx.Err(); ctxErr != nil {
		return fmt.Errorf("mail: %s: %w", stage, ctxErr)
	}
	var reply *textproto.Error
	if errors.As(err, &reply) {
		return &ServerError{Stage: stage, Code: reply.Code, reply: reply}
	}
	if errors.Is(err, ErrNoTLS) {
		return err
	}
	return fmt.Errorf("mail: %s: %w", stage, err)
}
