// Measures Guava's RateLimiter (tryAcquire(), which never blocks) on the scenarios of
// benchmarks/peers/README.md, so that its cost per decision can be put beside ours,
// measured on the same machine in the same run (benchmarks/peers/run.sh).
//
//   java -cp <classes>:/usr/share/java/guava.jar Main [scenario...]   (none: all)
//   java -cp ... Main -version                                         (the JVM's version)
//
// For each scenario it prints one line to stdout:
//
//   scenario,ns_per_decision(median),allowed_fraction,repetitions,ns_min,ns_max,clock,cores
//
// clock is what was timed, as in decision_bench: "cpu", the deciding thread's CPU time,
// for one thread (so that another process sharing the core does not count), "wall" for
// two threads (so that time spent waiting on each other does). cores is the deciding
// threads' CPU time over the wall time: below 1 (one thread) or 2 (two threads), other
// processes had the cores part of the time, and a two-thread row measured less overlap
// than it claims.
//
// run.sh starts one JVM per scenario, as JMH forks one per benchmark: in a shared JVM
// the JIT's profile of the first scenario would shape the code the next one runs, and
// one scenario's heap (10^6 limiters) would sit under the next one's collector.

import com.google.common.util.concurrent.RateLimiter;
import java.lang.management.ManagementFactory;
import java.lang.management.ThreadMXBean;
import java.util.ArrayList;
import java.util.Arrays;
import java.util.List;
import java.util.Locale;
import java.util.Random;
import java.util.concurrent.ConcurrentHashMap;

public final class Main {
  static final int REPETITIONS = 10;
  // Long enough per repetition that a scheduler hiccup on a shared host is a small part
  // of it, short enough that the whole run stays within a few minutes.
  static final long TARGET_REP_NS = 300_000_000L;
  static final int KEY_COUNT = 1_000_000;

  /**
   * One scenario: n decisions per call of run, returning how many were allowed (the sum
   * is printed, so the JIT cannot drop the calls that produce it). It adds the CPU time
   * of the threads that made them to cpuNs[0].
   */
  interface Body {
    long run(int n, long[] cpuNs) throws InterruptedException;

    /** Untimed work before each repetition. */
    default void beforeRepetition() {}
  }

  static final class Scenario {
    final String name;
    final java.util.function.Supplier<Body> setup; // builds the limiters, untimed
    final int fixedN; // decisions per repetition; 0: calibrated to TARGET_REP_NS
    final boolean wall; // time on the wall clock; otherwise on the deciding thread's CPU time

    Scenario(String name, java.util.function.Supplier<Body> setup, int fixedN, boolean wall) {
      this.name = name;
      this.setup = setup;
      this.fixedN = fixedN;
      this.wall = wall;
    }
  }

  static final List<Scenario> SCENARIOS =
      List.of(
          // Rate (and so burst: Guava's is one second of permits) so high that every
          // call takes the admission path.
          new Scenario("hot_key_allow", () -> oneThread(RateLimiter.create(1e9)), 0, false),
          // 1000/s against a loop making millions of calls a second: a flood, nearly
          // every call rejected.
          new Scenario("hot_key_reject", () -> oneThread(RateLimiter.create(1000)), 0, false),
          // Both threads on one limiter: they meet on its monitor.
          new Scenario(
              "two_threads_one_key",
              () -> {
                RateLimiter lim = RateLimiter.create(1e9);
                return twoThreads(lim, lim);
              },
              0,
              true),
          // One limiter each: what two cores cost when they share nothing but the clock.
          new Scenario(
              "two_threads_distinct_keys",
              () -> twoThreads(RateLimiter.create(1e9), RateLimiter.create(1e9)),
              0,
              true),
          // One repetition is one pass over every key, so each key is visited once per pass.
          new Scenario("keys_1M", Main::keys1M, KEY_COUNT, false));

  static final ThreadMXBean THREADS = ManagementFactory.getThreadMXBean();

  /** The loop the hot-key scenarios time, on the calling thread. */
  static long decide(RateLimiter lim, int n, long[] cpuNs) {
    long start = THREADS.getCurrentThreadCpuTime();
    long allowed = 0;
    for (int i = 0; i < n; i++) {
      if (lim.tryAcquire()) allowed++;
    }
    long cpu = THREADS.getCurrentThreadCpuTime() - start;
    synchronized (cpuNs) {
      cpuNs[0] += cpu;
    }
    return allowed;
  }

  static Body oneThread(RateLimiter lim) {
    return (n, cpuNs) -> decide(lim, n, cpuNs);
  }

  /**
   * Splits the n decisions between two threads; the repetition's time is the wall time
   * until both are done, so the result is wall time per decision across both, as in our
   * two_threads rows.
   */
  static Body twoThreads(RateLimiter a, RateLimiter b) {
    return (n, cpuNs) -> {
      long[] counts = new long[2];
      Thread ta = new Thread(() -> counts[0] = decide(a, n / 2, cpuNs));
      Thread tb = new Thread(() -> counts[1] = decide(b, n / 2, cpuNs));
      ta.start();
      tb.start();
      ta.join();
      tb.join();
      return counts[0] + counts[1];
    };
  }

  /**
   * Mirrors keys_1M in decision_bench.cpp: "user:0" ... "user:999999" inserted in order,
   * then visited in one fixed shuffled order, resuming where the last repetition stopped.
   * 1000/s per key, each visited about once per pass: every call admitted. The map is
   * what a Java user writes for per-key limits: a ConcurrentHashMap, get-or-create with
   * computeIfAbsent.
   */
  static Body keys1M() {
    ConcurrentHashMap<String, RateLimiter> limiters = new ConcurrentHashMap<>();
    for (int i = 0; i < KEY_COUNT; i++) {
      limiters.computeIfAbsent("user:" + i, k -> RateLimiter.create(1000));
    }
    int[] order = new int[KEY_COUNT];
    Arrays.setAll(order, i -> i);
    Random random = new Random(20240601);
    for (int i = KEY_COUNT - 1; i > 0; i--) {
      int j = random.nextInt(i + 1);
      int t = order[i];
      order[i] = order[j];
      order[j] = t;
    }
    String[] keys = new String[KEY_COUNT];
    return new Body() {
      int next = 0;

      // Fresh key strings before each repetition, allocated in visiting order so that
      // reading the next key is sequential, as if it came in a fresh request. Fresh,
      // because a String caches its hash: reused keys would skip the hashing that a
      // request's key costs (and that Go's map and ours pay on every call).
      @Override
      public void beforeRepetition() {
        for (int i = 0; i < KEY_COUNT; i++) keys[i] = "user:" + order[i];
      }

      @Override
      public long run(int n, long[] cpuNs) {
        long start = THREADS.getCurrentThreadCpuTime();
        long allowed = 0;
        int i = next;
        for (int k = 0; k < n; k++) {
          if (limiters.computeIfAbsent(keys[i], key -> RateLimiter.create(1000)).tryAcquire()) {
            allowed++;
          }
          if (++i == keys.length) i = 0;
        }
        next = i;
        cpuNs[0] += THREADS.getCurrentThreadCpuTime() - start;
        if (limiters.size() != KEY_COUNT) {
          throw new IllegalStateException("keys_1M: a visit inserted a key; the fill missed it");
        }
        return allowed;
      }
    };
  }

  /**
   * Grows n until one call takes a measurable time, then scales it to TARGET_REP_NS. It
   * is also the first part of the JIT's warm-up.
   */
  static int calibrate(Body body) throws InterruptedException {
    int n = 10_000;
    while (true) {
      body.beforeRepetition();
      long start = System.nanoTime();
      body.run(n, new long[1]);
      long elapsed = System.nanoTime() - start;
      if (elapsed >= TARGET_REP_NS / 4) return (int) ((double) n * TARGET_REP_NS / elapsed);
      n *= 4;
    }
  }

  static void measure(Scenario s) throws InterruptedException {
    Body body = s.setup.get();
    int n = s.fixedN != 0 ? s.fixedN : calibrate(body);
    // n must split evenly between two threads, so the count reported is the count made.
    n -= n % 2;
    // A discarded warm-up repetition: the timed ones run the JIT's final code.
    body.beforeRepetition();
    body.run(n, new long[1]);
    double[] ns = new double[REPETITIONS];
    long allowed = 0;
    long cpuSum = 0;
    long wallSum = 0;
    for (int r = 0; r < REPETITIONS; r++) {
      body.beforeRepetition();
      long[] cpu = new long[1];
      long start = System.nanoTime();
      allowed += body.run(n, cpu);
      long wall = System.nanoTime() - start;
      cpuSum += cpu[0];
      wallSum += wall;
      ns[r] = (double) (s.wall ? wall : cpu[0]) / n;
    }
    Arrays.sort(ns);
    double median = (ns[REPETITIONS / 2 - 1] + ns[REPETITIONS / 2]) / 2;
    double fraction = (double) allowed / n / REPETITIONS;
    // Locale.ROOT: a decimal comma would break the CSV.
    System.out.println(
        String.format(
            Locale.ROOT,
            "%s,%.1f,%.6f,%d,%.1f,%.1f,%s,%.2f",
            s.name,
            median,
            fraction,
            REPETITIONS,
            ns[0],
            ns[REPETITIONS - 1],
            s.wall ? "wall" : "cpu",
            (double) cpuSum / wallSum));
  }

  public static void main(String[] args) throws InterruptedException {
    if (args.length == 1 && args[0].equals("-version")) {
      System.out.println("java " + System.getProperty("java.runtime.version"));
      return;
    }
    List<String> names = new ArrayList<>(Arrays.asList(args));
    if (names.isEmpty()) SCENARIOS.forEach(s -> names.add(s.name));
    for (String name : names) {
      Scenario found = null;
      for (Scenario s : SCENARIOS) {
        if (s.name.equals(name)) found = s;
      }
      if (found == null) {
        System.err.println("Main: unknown scenario " + name);
        System.exit(2);
      }
      measure(found);
    }
  }
}
