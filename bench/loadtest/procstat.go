package main

import (
	"bufio"
	"bytes"
	"flag"
	"fmt"
	"io"
	"net/http"
	"os"
	"strconv"
	"strings"
	"time"
)

// clockTicks is USER_HZ, 100 on every Linux this runs on.
const clockTicks = 100

// procTicks returns utime+stime of one process, in clock ticks (0 when it is gone).
func procTicks(pid int) int64 {
	u, s, _, _ := procTimes(pid)
	return u + s
}

// procTimes returns utime, stime, cutime and cstime (the last two: children that exited
// and were waited for).
func procTimes(pid int) (u, s, cu, cs int64) {
	b, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/stat")
	if err != nil {
		return
	}
	// The command name is in parentheses and may hold spaces: fields start after the last ')'.
	i := bytes.LastIndexByte(b, ')')
	if i < 0 {
		return
	}
	f := strings.Fields(string(b[i+1:]))
	if len(f) < 15 {
		return
	}
	u, _ = strconv.ParseInt(f[11], 10, 64)
	s, _ = strconv.ParseInt(f[12], 10, 64)
	cu, _ = strconv.ParseInt(f[13], 10, 64)
	cs, _ = strconv.ParseInt(f[14], 10, 64)
	return
}

// treeTicks returns the ticks of pid and of its children, the live ones and those that have
// exited (PostgreSQL's backends are children of the postmaster; pgbench's end with it).
func treeTicks(pid int) int64 {
	u, s, cu, cs := procTimes(pid)
	total := u + s + cu + cs
	entries, err := os.ReadDir("/proc")
	if err != nil {
		return total
	}
	want := strconv.Itoa(pid)
	for _, e := range entries {
		child, err := strconv.Atoi(e.Name())
		if err != nil {
			continue
		}
		b, err := os.ReadFile("/proc/" + e.Name() + "/stat")
		if err != nil {
			continue
		}
		i := bytes.LastIndexByte(b, ')')
		if i < 0 {
			continue
		}
		f := strings.Fields(string(b[i+1:]))
		if len(f) > 1 && f[1] == want {
			total += procTicks(child)
		}
	}
	return total
}

// cpuTicksCmd prints the summed ticks of each pid tree, or of the whole machine for
// "machine" (for run.sh around pgbench).
func cpuTicksCmd(args []string) error {
	var total int64
	for _, a := range args {
		if a == "machine" {
			total += machineBusy()
			continue
		}
		pid, err := strconv.Atoi(a)
		if err != nil {
			return err
		}
		total += treeTicks(pid)
	}
	fmt.Println(total)
	return nil
}

// cpuWatch measures the CPU of the server, PostgreSQL and this process over a window.
type cpuWatch struct {
	server, pg int
	start      time.Time
	s, p, self int64
	busy       int64 // the whole machine's busy ticks, all cores
}

func startCPU(server, pg int) *cpuWatch {
	w := &cpuWatch{server: server, pg: pg, start: time.Now()}
	if server > 0 {
		w.s = procTicks(server)
	}
	if pg > 0 {
		w.p = treeTicks(pg)
	}
	w.self = procTicks(os.Getpid())
	w.busy = machineBusy()
	return w
}

// machineBusy returns the busy ticks of all cores together (/proc/stat: all but idle and
// iowait).
func machineBusy() int64 {
	b, err := os.ReadFile("/proc/stat")
	if err != nil {
		return 0
	}
	line, _, _ := strings.Cut(string(b), "\n")
	f := strings.Fields(line)
	var busy int64
	for i, v := range f[1:] {
		n, _ := strconv.ParseInt(v, 10, 64)
		if i != 3 && i != 4 && i < 8 { // user nice system idle iowait irq softirq steal
			busy += n
		}
	}
	return busy
}

// report prints each party's share of one core (on two cores, 200 % is all of it), and the
// whole machine's, so that other work on the machine shows.
func (w *cpuWatch) report(prefix string) {
	secs := time.Since(w.start).Seconds()
	pct := func(t int64) float64 { return float64(t) / clockTicks / secs * 100 }
	if w.server > 0 {
		figure(prefix+"cpu_lupa_pct", pct(procTicks(w.server)-w.s))
	}
	if w.pg > 0 {
		figure(prefix+"cpu_postgres_pct", pct(treeTicks(w.pg)-w.p))
	}
	self := pct(procTicks(os.Getpid()) - w.self)
	figure(prefix+"cpu_loadgen_pct", self)
	figure(prefix+"cpu_machine_pct", pct(machineBusy()-w.busy))
}

// quietCmd waits until the machine is nearly idle (other work on a shared machine would
// take CPU from the benchmark), for at most -timeout; it warns when it gives up.
func quietCmd(args []string) error {
	fs := flag.NewFlagSet("quiet", flag.ExitOnError)
	maxPct := fs.Float64("max", 25, "busy % of the whole machine (all cores: 100 × cores) counted as quiet")
	timeout := fs.Duration("timeout", 2*time.Minute, "give up waiting after this long")
	_ = fs.Parse(args)
	deadline := time.Now().Add(*timeout)
	quiet, warned := 0, false
	for {
		a := machineBusy()
		time.Sleep(time.Second)
		busy := float64(machineBusy()-a) / clockTicks * 100
		if busy <= *maxPct {
			quiet++
		} else {
			quiet = 0
			if !warned {
				logf("the machine is busy (%.0f %% CPU) with other work: waiting for it to quieten", busy)
				warned = true
			}
		}
		if quiet >= 2 {
			return nil
		}
		if time.Now().After(deadline) {
			logf("WARNING: the machine stayed busy (%.0f %% CPU) with other work; figures will be low", busy)
			return nil
		}
	}
}

// peakRSSMB returns VmHWM (peak resident set) of a process in MB.
func peakRSSMB(pid int) (float64, error) {
	f, err := os.Open("/proc/" + strconv.Itoa(pid) + "/status")
	if err != nil {
		return 0, err
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		if v, ok := strings.CutPrefix(sc.Text(), "VmHWM:"); ok {
			kb, err := strconv.ParseFloat(strings.TrimSuffix(strings.TrimSpace(v), " kB"), 64)
			if err != nil {
				return 0, err
			}
			return kb / 1024, nil
		}
	}
	return 0, fmt.Errorf("no VmHWM in /proc/%d/status", pid)
}

// writerStats are the group-commit writer's counters from Lupa's /metrics.
type writerStats struct {
	batches, interactions     float64 // lupa_writer_batch_size _count and _sum
	commitSum, waitSum, waits float64
	buckets                   map[string]float64 // batch size le → cumulative count
}

func scrapeWriter(url string) (*writerStats, error) {
	if url == "" {
		return nil, nil
	}
	c := http.Client{Timeout: 5 * time.Second}
	resp, err := c.Get(url)
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		return nil, err
	}
	s := &writerStats{buckets: map[string]float64{}}
	for _, line := range strings.Split(string(b), "\n") {
		if strings.HasPrefix(line, "#") || line == "" {
			continue
		}
		i := strings.LastIndexByte(line, ' ')
		if i < 0 {
			continue
		}
		v, err := strconv.ParseFloat(line[i+1:], 64)
		if err != nil {
			continue
		}
		name := line[:i]
		switch {
		case name == "lupa_writer_batch_size_count":
			s.batches = v
		case name == "lupa_writer_batch_size_sum":
			s.interactions = v
		case name == "lupa_writer_commit_seconds_sum":
			s.commitSum = v
		case name == "lupa_writer_batch_wait_seconds_sum":
			s.waitSum = v
		case name == "lupa_writer_batch_wait_seconds_count":
			s.waits = v
		case strings.HasPrefix(name, `lupa_writer_batch_size_bucket{le="`):
			s.buckets[strings.TrimSuffix(strings.TrimPrefix(name, `lupa_writer_batch_size_bucket{le="`), `"}`)] = v
		}
	}
	return s, nil
}

// reportWriter prints what the writer did between two scrapes.
func reportWriter(prefix string, a, b *writerStats, secs float64) {
	if a == nil || b == nil {
		return
	}
	n := b.batches - a.batches
	if n <= 0 {
		return
	}
	figure(prefix+"writer_batches_per_s", n/secs)
	figure(prefix+"writer_batch_mean", (b.interactions-a.interactions)/n)
	figure(prefix+"writer_batch_ms_mean", (b.commitSum-a.commitSum)/n*1000)
	if w := b.waits - a.waits; w > 0 {
		figure(prefix+"writer_wait_ms_mean", (b.waitSum-a.waitSum)/w*1000)
	}
	// The batch size distribution, as the share of batches in each bucket.
	les := []string{"1", "2", "4", "8", "16", "32", "64", "128", "256", "+Inf"}
	var parts []string
	prev := 0.0
	for _, le := range les {
		cum := b.buckets[le] - a.buckets[le]
		if share := (cum - prev) / n * 100; share >= 0.5 {
			parts = append(parts, fmt.Sprintf("<=%s:%.0f%%", le, share))
		}
		prev = cum
	}
	figure(prefix+"writer_batch_sizes", strings.Join(parts, ","))
}
