// Command loadtest drives Lupa's HTTP benchmarks for bench/run.sh: it sets up a running
// `lupa serve` (the demo tenant plus device-level purposes), puts the write, state-read and
// bulk-check loads on it, seeds customers for the check, and prints every figure as a
// name=value line on stdout (diagnostics go to stderr).
//
//	loadtest freeport
//	loadtest setup  -serve-out FILE -pid PID -out TARGET.json
//	loadtest write  -target TARGET.json [-prefix sqlite_] [-c 32] [-warmup 5s] [-duration 30s] ...
//	loadtest read   -target TARGET.json -devices FILE [-c 64] [-duration 20s]
//	loadtest seed   -target TARGET.json [-n 250000] [-c 96]
//	loadtest check  -target TARGET.json [-n 250000] [-batch 10000] [-calls 20]
//	loadtest config -target TARGET.json [-c 64] [-rounds 3] [-duration 10s]
//	loadtest bare   -addr ADDR -body FILE [-header "Name: value"]...
//	loadtest signin -target TARGET.json -accounts FILE [-c 64] [-duration 20s] [-pid PID]
//	loadtest cputicks PID...|machine
//	loadtest quiet [-max 25] [-timeout 2m]
package main

import (
	"encoding/json"
	"fmt"
	"net"
	"os"
	"sort"
	"strconv"
	"time"
)

func main() {
	if len(os.Args) < 2 {
		fmt.Fprintln(os.Stderr, "usage: loadtest freeport|setup|write|read|seed|check|config|bare|signin|cputicks|quiet …")
		os.Exit(2)
	}
	args := os.Args[2:]
	var err error
	switch os.Args[1] {
	case "freeport":
		err = freePort()
	case "setup":
		err = setupCmd(args)
	case "write":
		err = writeCmd(args)
	case "read":
		err = readCmd(args)
	case "seed":
		err = seedCmd(args)
	case "check":
		err = checkCmd(args)
	case "config":
		err = configCmd(args)
	case "bare":
		err = bareCmd(args)
	case "signin":
		err = signinCmd(args)
	case "cputicks":
		err = cpuTicksCmd(args)
	case "quiet":
		err = quietCmd(args)
	default:
		err = fmt.Errorf("unknown command %q", os.Args[1])
	}
	if err != nil {
		fmt.Fprintln(os.Stderr, "loadtest:", err)
		os.Exit(1)
	}
}

// freePort prints a TCP port on 127.0.0.1 that was free a moment ago.
func freePort() error {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return err
	}
	defer l.Close()
	fmt.Println(l.Addr().(*net.TCPAddr).Port)
	return nil
}

// target is what setup learnt about a running Lupa; the other commands read it.
type target struct {
	Addr        string       `json:"addr"` // host:port
	AdminKey    string       `json:"admin_key"`
	PropertyKey string       `json:"property_key"`
	Origin      string       `json:"origin"`
	Device      []purposeRef `json:"device"` // device-level consent purposes a banner asks
	Person      []purposeRef `json:"person"` // person-level consent purposes
}

type purposeRef struct {
	Key      string `json:"key"`
	Version  int    `json:"version"`
	TextHash string `json:"text_hash"` // of the Finnish text
}

func loadTarget(path string) (*target, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, err
	}
	var t target
	if err := json.Unmarshal(b, &t); err != nil {
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	return &t, nil
}

// clientIPs are the addresses the load claims to come from, through X-Forwarded-For (Lupa
// trusts the header from 127.0.0.1 only). They are header values, never contacted.
func clientIPs(n int) [][]byte {
	out := make([][]byte, n)
	for i := range out {
		out[i] = []byte(fmt.Sprintf("10.77.%d.%d", i/250, i%250+1))
	}
	return out
}

// figure prints one result line.
func figure(name string, v any) {
	switch x := v.(type) {
	case float64:
		fmt.Printf("%s=%s\n", name, strconv.FormatFloat(x, 'f', 2, 64))
	default:
		fmt.Printf("%s=%v\n", name, x)
	}
}

func logf(format string, args ...any) {
	fmt.Fprintf(os.Stderr, time.Now().Format("15:04:05 ")+format+"\n", args...)
}

// latencies collects request durations in microseconds.
type latencies []uint32

func (l *latencies) add(d time.Duration) { *l = append(*l, uint32(d/time.Microsecond)) }

func merge(ls []latencies) latencies {
	n := 0
	for _, l := range ls {
		n += len(l)
	}
	out := make(latencies, 0, n)
	for _, l := range ls {
		out = append(out, l...)
	}
	sort.Slice(out, func(i, j int) bool { return out[i] < out[j] })
	return out
}

// ms returns the q-quantile (0..1) of sorted latencies, in milliseconds.
func (l latencies) ms(q float64) float64 {
	if len(l) == 0 {
		return 0
	}
	i := int(q*float64(len(l))+0.5) - 1
	i = max(0, min(i, len(l)-1))
	return float64(l[i]) / 1000
}

// errorLog counts failed requests by cause and keeps one example of each.
type errorLog struct {
	counts   map[string]int
	examples map[string]string
}

func newErrorLog() *errorLog {
	return &errorLog{counts: map[string]int{}, examples: map[string]string{}}
}

func (e *errorLog) add(status int, body []byte, err error) {
	key := strconv.Itoa(status)
	ex := ""
	if err != nil {
		key, ex = "transport", err.Error()
	} else {
		ex = statusError(status, body).Error()
	}
	e.counts[key]++
	if _, ok := e.examples[key]; !ok {
		e.examples[key] = ex
	}
}

func (e *errorLog) mergeFrom(o *errorLog) {
	for k, v := range o.counts {
		e.counts[k] += v
		if _, ok := e.examples[k]; !ok {
			e.examples[k] = o.examples[k]
		}
	}
}

func (e *errorLog) total() int {
	n := 0
	for _, v := range e.counts {
		n += v
	}
	return n
}

// report prints the breakdown to stderr, so a failing run says why.
func (e *errorLog) report(what string) {
	keys := make([]string, 0, len(e.counts))
	for k := range e.counts {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	for _, k := range keys {
		logf("%s: %d answered %s, e.g. %s", what, e.counts[k], k, e.examples[k])
	}
}
