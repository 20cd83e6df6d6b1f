// Command peers-go measures golang.org/x/time/rate on the scenarios of
// benchmarks/peers/README.md, so that its cost per decision can be put beside ours,
// measured on the same machine in the same run (benchmarks/peers/run.sh).
//
//	peers-go [scenario...]   (no argument: every scenario)
//	peers-go -version        (the Go runtime it was built with)
//
// For each scenario it prints one line to stdout:
//
//	scenario,ns_per_decision(median),allowed_fraction,repetitions,ns_min,ns_max,clock,cores
//
// clock is what was timed, as in decision_bench: "cpu", the deciding thread's CPU time,
// for one thread (so that another process sharing the core does not count), "wall" for
// two threads (so that time spent waiting on each other does). cores is the deciding
// threads' CPU time over the wall time: below 1 (one thread) or 2 (two threads), other
// processes had the cores part of the time, and a two-thread row measured less overlap
// than it claims.
//
// run.sh runs each scenario in a process of its own, as it does for the JVM, so that one
// scenario's heap (10^6 limiters) does not sit under the next one's garbage collector.
package main

import (
	"fmt"
	"math/rand"
	"os"
	"runtime"
	"sort"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"
	"unsafe"

	"golang.org/x/time/rate"
)

const (
	repetitions = 10
	// Long enough per repetition that a scheduler hiccup on a shared host is a small
	// part of it, short enough that the whole run stays within a few minutes.
	targetRep = 300 * time.Millisecond
	keyCount  = 1_000_000
)

// A body makes n decisions and returns how many were allowed (the sum is printed, so the
// compiler cannot drop the calls that produce it) and the CPU time of the threads that
// made them.
type body func(n int) (allowed int64, cpu time.Duration)

type scenario struct {
	name string
	// setup builds the limiters outside the timed region and returns the timed body.
	setup func() body
	// fixedN, when set, is the decisions per repetition instead of a calibrated count.
	fixedN int
	// wall: time the repetition on the wall clock; otherwise on the deciding thread's CPU time.
	wall bool
}

var scenarios = []scenario{
	// Rate and burst so high that every call takes the admission path.
	{name: "hot_key_allow", setup: func() body {
		return oneThread(rate.NewLimiter(1e9, 1e9))
	}},
	// 1000/s against a loop making tens of millions of calls a second: a flood, nearly
	// every call rejected.
	{name: "hot_key_reject", setup: func() body {
		return oneThread(rate.NewLimiter(1000, 1000))
	}},
	// Both goroutines on one limiter: they meet on its mutex.
	{name: "two_threads_one_key", setup: func() body {
		lim := rate.NewLimiter(1e9, 1e9)
		return twoThreads(lim, lim)
	}, wall: true},
	// One limiter each: what two cores cost when they share nothing but the clock.
	{name: "two_threads_distinct_keys", setup: func() body {
		return twoThreads(rate.NewLimiter(1e9, 1e9), rate.NewLimiter(1e9, 1e9))
	}, wall: true},
	// One repetition is one pass over every key, so each key is visited once per pass.
	{name: "keys_1M", setup: keys1M, fixedN: keyCount},
}

func decide(lim *rate.Limiter, n int) int64 {
	var allowed int64
	for i := 0; i < n; i++ {
		if lim.Allow() {
			allowed++
		}
	}
	return allowed
}

func oneThread(lim *rate.Limiter) body {
	return func(n int) (int64, time.Duration) {
		start := threadCPU()
		allowed := decide(lim, n)
		return allowed, threadCPU() - start
	}
}

// twoThreads splits the n decisions between two goroutines; the repetition's time is
// the wall time until both are done, so the result is wall time per decision across
// both, as in our two_threads rows.
func twoThreads(a, b *rate.Limiter) body {
	return func(n int) (int64, time.Duration) {
		var wg sync.WaitGroup
		var counts [2]int64
		var cpus [2]time.Duration
		for t, lim := range []*rate.Limiter{a, b} {
			wg.Add(1)
			go func(t int, lim *rate.Limiter) {
				defer wg.Done()
				// On one thread from start to end, so that its CPU time is this goroutine's.
				runtime.LockOSThread()
				defer runtime.UnlockOSThread()
				counts[t], cpus[t] = oneThread(lim)(n / 2)
			}(t, lim)
		}
		wg.Wait()
		return counts[0] + counts[1], cpus[0] + cpus[1]
	}
}

// limiters is what a Go user writes for per-key limits, the pattern of the usual
// per-client middleware examples: a plain map guarded by a sync.Mutex, the lock held only
// to find or insert the key, Allow called outside it. (sync.Map would suit keys that are
// written once, but it is the rarer choice, and boxes each value in an interface.)
type limiters struct {
	mu sync.Mutex
	m  map[string]*rate.Limiter
}

func (l *limiters) get(key string) *rate.Limiter {
	l.mu.Lock()
	lim, ok := l.m[key]
	if !ok {
		lim = rate.NewLimiter(1000, 1000)
		l.m[key] = lim
	}
	l.mu.Unlock()
	return lim
}

// keys1M mirrors keys_1M in decision_bench.cpp: "user:0" ... "user:999999" inserted in
// order, then visited in one fixed shuffled order, resuming where the last repetition
// stopped. 1000/s per key, each visited about once per pass: every call admitted.
func keys1M() body {
	l := &limiters{m: make(map[string]*rate.Limiter)}
	for i := 0; i < keyCount; i++ {
		l.get("user:" + strconv.Itoa(i))
	}
	order := rand.New(rand.NewSource(20240601)).Perm(keyCount)
	// The visiting keys are copies laid out in visiting order in one buffer, so reading
	// the next key is sequential, as if it came in a fresh request: the cache misses
	// measured are the map's, not this slice's.
	var buf strings.Builder
	for _, i := range order {
		buf.WriteString("user:" + strconv.Itoa(i))
	}
	all := buf.String()
	keys := make([]string, 0, keyCount)
	off := 0
	for _, i := range order {
		n := len("user:") + len(strconv.Itoa(i))
		keys = append(keys, all[off:off+n])
		off += n
	}
	// The fill's garbage is collected now rather than during a timed repetition.
	runtime.GC()
	next := 0
	return func(n int) (int64, time.Duration) {
		start := threadCPU()
		var allowed int64
		i := next
		for k := 0; k < n; k++ {
			if l.get(keys[i]).Allow() {
				allowed++
			}
			if i++; i == len(keys) {
				i = 0
			}
		}
		next = i
		cpu := threadCPU() - start
		if len(l.m) != keyCount {
			panic("keys_1M: a visit inserted a key; the fill missed it")
		}
		return allowed, cpu
	}
}

// calibrate grows n until one call of run takes a measurable time, then scales it to
// targetRep. It doubles as the warm-up.
func calibrate(run body) int {
	n := 10_000
	for {
		start := time.Now()
		run(n)
		elapsed := time.Since(start)
		if elapsed >= targetRep/4 {
			return int(float64(n) * float64(targetRep) / float64(elapsed))
		}
		n *= 4
	}
}

// threadCPU is the calling thread's CPU time: the time it ran, whatever else shares the
// core. The caller's goroutine must be locked to its thread (main's is).
func threadCPU() time.Duration {
	const clockThreadCPUTimeID = 3 // CLOCK_THREAD_CPUTIME_ID (Linux)
	var ts syscall.Timespec
	if _, _, errno := syscall.Syscall(syscall.SYS_CLOCK_GETTIME, clockThreadCPUTimeID,
		uintptr(unsafe.Pointer(&ts)), 0); errno != 0 {
		panic(errno)
	}
	return time.Duration(ts.Nano())
}

func measure(s scenario) {
	run := s.setup()
	n := s.fixedN
	if n == 0 {
		n = calibrate(run)
	}
	// n must split evenly between two threads, so the count reported is the count made.
	n -= n % 2
	run(n) // a discarded warm-up repetition, as the JVM needs one
	ns := make([]float64, repetitions)
	var allowed int64
	var cpuSum, wallSum time.Duration
	for r := range ns {
		start := time.Now()
		a, cpu := run(n)
		wall := time.Since(start)
		allowed += a
		cpuSum += cpu
		wallSum += wall
		if s.wall {
			ns[r] = float64(wall) / float64(n)
		} else {
			ns[r] = float64(cpu) / float64(n)
		}
	}
	sort.Float64s(ns)
	median := (ns[repetitions/2-1] + ns[repetitions/2]) / 2
	fraction := float64(allowed) / float64(n) / repetitions
	clock := "cpu"
	if s.wall {
		clock = "wall"
	}
	fmt.Printf("%s,%.1f,%.6f,%d,%.1f,%.1f,%s,%.2f\n", s.name, median, fraction, repetitions,
		ns[0], ns[repetitions-1], clock, float64(cpuSum)/float64(wallSum))
}

func main() {
	// Two threads for the two-thread scenarios, whatever the machine has; the others use one.
	runtime.GOMAXPROCS(2)
	runtime.LockOSThread()
	args := os.Args[1:]
	if len(args) == 1 && args[0] == "-version" {
		fmt.Println(runtime.Version())
		return
	}
	if len(args) == 0 {
		for _, s := range scenarios {
			args = append(args, s.name)
		}
	}
	for _, name := range args {
		found := false
		for _, s := range scenarios {
			if s.name == name {
				measure(s)
				found = true
			}
		}
		if !found {
			fmt.Fprintf(os.Stderr, "peers-go: unknown scenario %q\n", name)
			os.Exit(2)
		}
	}
}
