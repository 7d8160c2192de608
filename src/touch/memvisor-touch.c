/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * memvisor-touch: a small deterministic memory toucher, the workload memvisor runs inside guests.
 *
 * It maps N MiB of anonymous memory, splits it among T threads (thread i gets the i-th contiguous share and
 * is pinned to one CPU) and touches one 8-byte word per unit, a unit being a page (--page-size) for the
 * sequential and random patterns and --stride bytes for the stride pattern. Random is a permutation of the
 * thread's units drawn from --seed, so a run is deterministic for a seed. It writes or reads (reads are
 * folded into a checksum so they cannot be optimised away) for --passes passes or --duration seconds and
 * prints one JSON object on stdout (see memvisor-touch(1)).
 *
 * Built as a static binary that depends on libc only (it has to run in any guest), without sanitizers.
 * Exit status: 0 done, 1 runtime failure, 2 bad usage.
 */

#include <errno.h>
#include <getopt.h>
#include <inttypes.h>
#include <limits.h>
#include <pthread.h>
#include <sched.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/resource.h>
#include <time.h>
#include <unistd.h>

#ifndef TOUCH_VERSION
#define TOUCH_VERSION "unknown"
#endif

#define MIB (UINT64_C(1) << 20)
#define MAX_THREADS 1024
#define MAX_PASSES 100000
#define MAX_DURATION_S 86400.0
#define MAX_PAGE_SIZE (UINT64_C(1) << 30)
#define FIRST_UNITS 8
#define EXIT_USAGE 2

typedef enum Pattern {
        PATTERN_SEQUENTIAL,
        PATTERN_RANDOM,
        PATTERN_STRIDE,
        _PATTERN_MAX,
} Pattern;

static const char *const pattern_names[_PATTERN_MAX] = {
        [PATTERN_SEQUENTIAL] = "sequential",
        [PATTERN_RANDOM] = "random",
        [PATTERN_STRIDE] = "stride",
};

typedef struct Options {
        uint64_t mib;
        unsigned threads;
        int *cpus;              /* from --cpus, or NULL */
        unsigned n_cpus;
        Pattern pattern;
        uint64_t stride;        /* 0: not given */
        uint64_t seed;
        bool write;
        unsigned passes;        /* 0 with a duration */
        double duration_s;      /* 0: passes */
        uint64_t page_size;
        bool hugepages;
} Options;

typedef struct Run Run;

typedef struct Worker {
        Run *run;
        unsigned index;
        int cpu;
        uint64_t first, count;  /* its units */
        uint64_t *order;        /* random pattern: a permutation of 0..count-1 */
        uint64_t checksum;
        uint64_t ns;            /* time spent touching, all passes */
        uint64_t units_done;
        pthread_t thread;
        int error;              /* errno of a failure in the thread (pinning) */
} Worker;

struct Run {
        const Options *opts;
        uint8_t *mem;
        uint64_t step;          /* bytes per unit */
        pthread_barrier_t start, end;
        volatile bool stop;     /* read after the start barrier: no pass follows */
        unsigned pass;          /* the pass the threads are about to run */
        Worker *workers;
};

/* ---------------------------------------------------------------------------------------- helpers --- */

static uint64_t splitmix64(uint64_t *state) {
        uint64_t z = (*state += UINT64_C(0x9e3779b97f4a7c15));
        z = (z ^ (z >> 30)) * UINT64_C(0xbf58476d1ce4e5b9);
        z = (z ^ (z >> 27)) * UINT64_C(0x94d049bb133111eb);
        return z ^ (z >> 31);
}

static uint64_t mix(uint64_t h, uint64_t v) {
        uint64_t s = h ^ v;
        return splitmix64(&s);
}

static uint64_t now_ns(void) {
        struct timespec ts;

        (void) clock_gettime(CLOCK_MONOTONIC, &ts);
        return (uint64_t) ts.tv_sec * UINT64_C(1000000000) + (uint64_t) ts.tv_nsec;
}

static int parse_u64(const char *s, uint64_t min, uint64_t max, uint64_t *ret) {
        char *end;
        unsigned long long v;

        if (!s || *s < '0' || *s > '9')
                return -EINVAL;
        errno = 0;
        v = strtoull(s, &end, 0);
        if (errno != 0 || *end != '\0')
                return -EINVAL;
        if (v < min || v > max)
                return -ERANGE;
        *ret = v;
        return 0;
}

__attribute__((format(printf, 1, 2)))
static int usage_error(const char *fmt, ...) {
        va_list ap;

        fprintf(stderr, "memvisor-touch: ");
        va_start(ap, fmt);
        vfprintf(stderr, fmt, ap);
        va_end(ap);
        fprintf(stderr, "\nTry 'memvisor-touch --help'.\n");
        return EXIT_USAGE;
}

/* "0,2-3" → {0, 2, 3} (in the order given) */
static int parse_cpus(const char *s, int **ret, unsigned *ret_n) {
        int *cpus = NULL;
        unsigned n = 0;
        const char *p = s;

        while (*p) {
                uint64_t a, b;
                char buf[32], *dash;
                size_t len = strcspn(p, ",");

                if (len == 0 || len >= sizeof buf)
                        goto bad;
                memcpy(buf, p, len);
                buf[len] = '\0';
                dash = strchr(buf, '-');
                if (dash)
                        *dash = '\0';
                if (parse_u64(buf, 0, CPU_SETSIZE - 1, &a) < 0)
                        goto bad;
                b = a;
                if (dash && parse_u64(dash + 1, a, CPU_SETSIZE - 1, &b) < 0)
                        goto bad;
                for (uint64_t c = a; c <= b; c++) {
                        int *m;

                        if (n >= MAX_THREADS)
                                goto bad;
                        m = realloc(cpus, (n + 1) * sizeof *cpus);
                        if (!m)
                                goto bad;
                        cpus = m;
                        cpus[n++] = (int) c;
                }
                p += len;
                if (*p == ',') {
                        p++;
                        if (!*p)
                                goto bad;
                }
        }
        if (n == 0)
                goto bad;
        *ret = cpus;
        *ret_n = n;
        return 0;
bad:
        free(cpus);
        return -EINVAL;
}

/* MemTotal of /proc/meminfo in bytes, or 0 when it cannot be read */
static uint64_t mem_total(void) {
        FILE *f = fopen("/proc/meminfo", "re");
        char line[256];
        uint64_t kib = 0;

        if (!f)
                return 0;
        while (fgets(line, sizeof line, f))
                if (sscanf(line, "MemTotal: %" SCNu64 " kB", &kib) == 1)
                        break;
        fclose(f);
        return kib * 1024;
}

static void help(void) {
        printf("memvisor-touch --mib=N [OPTION...]\n\n"
               "Touches N MiB of anonymous memory, one 8-byte word per page (or per stride), and prints one\n"
               "JSON object with the timings and page-fault counts. Deterministic for a seed.\n\n"
               "  --mib=N               memory to map, in MiB (at most the machine's MemTotal)\n"
               "  --threads=T           threads, each touching a contiguous share (default 1)\n"
               "  --cpus=LIST           pin thread i to the i-th CPU of LIST (\"0,2-3\"); default: thread i\n"
               "                        on the (i mod n)-th of the n CPUs the process may run on\n"
               "  --pattern=P           sequential (default), random (a seeded permutation of the pages)\n"
               "                        or stride (every --stride bytes)\n"
               "  --stride=BYTES        step of the stride pattern, a multiple of 8 (default: the page size)\n"
               "  --seed=S              seed of the random order and of the values written (default:\n"
               "                        $MEMVISOR_SEED, else 1)\n"
               "  --write | --read      store to or load from each word (default --write)\n"
               "  --passes=P            passes over the memory (default 1, at most %d)\n"
               "  --duration=SECONDS    instead: passes until this much time has gone by\n"
               "  --page-size=BYTES     the unit of the sequential and random patterns (default: the\n"
               "                        system page size)\n"
               "  --hugepages           madvise(MADV_HUGEPAGE) the mapping\n"
               "  --help, --version\n\n"
               "Exit status: 0 done, 1 runtime failure, 2 bad usage.\n", MAX_PASSES);
}

static int parse_args(int argc, char **argv, Options *o) {
        enum { ARG_MIB = 0x100, ARG_THREADS, ARG_CPUS, ARG_PATTERN, ARG_STRIDE, ARG_SEED, ARG_READ, ARG_WRITE,
               ARG_PASSES, ARG_DURATION, ARG_PAGE_SIZE, ARG_HUGEPAGES, ARG_HELP, ARG_VERSION };
        static const struct option long_options[] = {
                { "mib",        required_argument, NULL, ARG_MIB },
                { "threads",    required_argument, NULL, ARG_THREADS },
                { "cpus",       required_argument, NULL, ARG_CPUS },
                { "pattern",    required_argument, NULL, ARG_PATTERN },
                { "stride",     required_argument, NULL, ARG_STRIDE },
                { "seed",       required_argument, NULL, ARG_SEED },
                { "read",       no_argument,       NULL, ARG_READ },
                { "write",      no_argument,       NULL, ARG_WRITE },
                { "passes",     required_argument, NULL, ARG_PASSES },
                { "duration",   required_argument, NULL, ARG_DURATION },
                { "page-size",  required_argument, NULL, ARG_PAGE_SIZE },
                { "hugepages",  no_argument,       NULL, ARG_HUGEPAGES },
                { "help",       no_argument,       NULL, ARG_HELP },
                { "version",    no_argument,       NULL, ARG_VERSION },
                {}
        };
        bool have_passes = false, have_mode = false;
        uint64_t v, total;
        long ps;
        int c;

        ps = sysconf(_SC_PAGESIZE);
        *o = (Options) { .threads = 1, .seed = 1, .write = true, .passes = 1,
                         .page_size = ps > 0 ? (uint64_t) ps : 4096 };
        /* An experiment hands its iteration's seed down in the environment; --seed= wins. */
        if (getenv("MEMVISOR_SEED") && parse_u64(getenv("MEMVISOR_SEED"), 0, UINT64_MAX, &v) >= 0)
                o->seed = v;

        opterr = 0;
        while ((c = getopt_long(argc, argv, "", long_options, NULL)) >= 0) {
                switch (c) {
                case ARG_MIB:
                        if (parse_u64(optarg, 1, UINT64_C(1) << 30, &o->mib) < 0)
                                return usage_error("invalid --mib=%s (a number of MiB, at least 1)", optarg);
                        break;
                case ARG_THREADS:
                        if (parse_u64(optarg, 1, MAX_THREADS, &v) < 0)
                                return usage_error("invalid --threads=%s (1 to 1024)", optarg);
                        o->threads = (unsigned) v;
                        break;
                case ARG_CPUS:
                        free(o->cpus);
                        o->cpus = NULL;
                        if (parse_cpus(optarg, &o->cpus, &o->n_cpus) < 0)
                                return usage_error("invalid --cpus=%s (a list such as 0,2-3)", optarg);
                        break;
                case ARG_PATTERN:
                        o->pattern = _PATTERN_MAX;
                        for (Pattern p = 0; p < _PATTERN_MAX; p++)
                                if (strcmp(optarg, pattern_names[p]) == 0)
                                        o->pattern = p;
                        if (o->pattern == _PATTERN_MAX)
                                return usage_error("invalid --pattern=%s (sequential, random or stride)", optarg);
                        break;
                case ARG_STRIDE:
                        if (parse_u64(optarg, 8, MAX_PAGE_SIZE, &o->stride) < 0 || o->stride % 8 != 0)
                                return usage_error("invalid --stride=%s (a multiple of 8 bytes)", optarg);
                        break;
                case ARG_SEED:
                        if (parse_u64(optarg, 0, UINT64_MAX, &o->seed) < 0)
                                return usage_error("invalid --seed=%s", optarg);
                        break;
                case ARG_READ:
                case ARG_WRITE:
                        if (have_mode && o->write != (c == ARG_WRITE))
                                return usage_error("%s", "--read and --write exclude each other");
                        o->write = c == ARG_WRITE;
                        have_mode = true;
                        break;
                case ARG_PASSES:
                        if (parse_u64(optarg, 1, MAX_PASSES, &v) < 0)
                                return usage_error("invalid --passes=%s (1 to 100000)", optarg);
                        o->passes = (unsigned) v;
                        have_passes = true;
                        break;
                case ARG_DURATION: {
                        char *end;

                        errno = 0;
                        o->duration_s = strtod(optarg, &end);
                        if (errno != 0 || end == optarg || *end != '\0' || !(o->duration_s > 0) ||
                            o->duration_s > MAX_DURATION_S)
                                return usage_error("invalid --duration=%s (seconds, more than 0, at most 86400)",
                                                   optarg);
                        break;
                }
                case ARG_PAGE_SIZE:
                        if (parse_u64(optarg, 8, MAX_PAGE_SIZE, &o->page_size) < 0 ||
                            (o->page_size & (o->page_size - 1)) != 0)
                                return usage_error("invalid --page-size=%s (a power of two, 8 bytes to 1 GiB)", optarg);
                        break;
                case ARG_HUGEPAGES:
                        o->hugepages = true;
                        break;
                case ARG_HELP:
                        help();
                        exit(EXIT_SUCCESS);
                case ARG_VERSION:
                        printf("memvisor-touch %s\n", TOUCH_VERSION);
                        exit(EXIT_SUCCESS);
                case '?':
                        return usage_error("unknown or incomplete option %s", argv[optind - 1]);
                default:
                        return usage_error("%s", "internal error parsing the options");
                }
        }
        if (optind < argc)
                return usage_error("unexpected argument %s", argv[optind]);
        if (o->mib == 0)
                return usage_error("%s", "--mib=N is required");
        if (have_passes && o->duration_s > 0)
                return usage_error("%s", "--passes and --duration exclude each other");
        if (o->duration_s > 0)
                o->passes = 0;
        if (o->stride != 0 && o->pattern != PATTERN_STRIDE)
                return usage_error("%s", "--stride needs --pattern=stride");
        if (o->pattern == PATTERN_STRIDE && o->stride == 0)
                o->stride = o->page_size;
        if (o->page_size > o->mib * MIB || o->stride > o->mib * MIB)
                return usage_error("%s", "--page-size and --stride must not exceed --mib");
        if (o->cpus && o->n_cpus < o->threads)
                return usage_error("%s", "--cpus lists fewer CPUs than --threads");
        total = mem_total();
        if (total > 0 && o->mib * MIB > total) {
                fprintf(stderr, "memvisor-touch: --mib=%" PRIu64 " is more than this machine's memory "
                        "(MemTotal %" PRIu64 " MiB)\n", o->mib, total / MIB);
                return EXIT_USAGE;
        }
        if (o->threads > o->mib * MIB / (o->pattern == PATTERN_STRIDE ? o->stride : o->page_size))
                return usage_error("%s", "more threads than pages (or strides) to touch");
        return 0;
}

/* ---------------------------------------------------------------------------------------- workers --- */

static void touch_pass(Worker *w, unsigned pass) {
        const Run *run = w->run;
        uint8_t *base = run->mem + w->first * run->step;
        uint64_t c = w->checksum;

        for (uint64_t i = 0; i < w->count; i++) {
                uint64_t unit = w->order ? w->order[i] : i;
                volatile uint64_t *p = (volatile uint64_t *) (base + unit * run->step);
                uint64_t global = w->first + unit;

                if (run->opts->write) {
                        uint64_t s = run->opts->seed ^ global, v = splitmix64(&s) + pass;

                        *p = v;
                        c = mix(c, v);
                } else
                        c = mix(c, *p ^ global);
        }
        w->checksum = c;
        w->units_done += w->count;
}

static void *worker_main(void *userdata) {
        Worker *w = userdata;
        Run *run = w->run;
        cpu_set_t set;

        CPU_ZERO(&set);
        CPU_SET(w->cpu, &set);
        w->error = pthread_setaffinity_np(pthread_self(), sizeof set, &set);
        (void) pthread_barrier_wait(&run->end);        /* ready: main checks w->error */

        for (;;) {
                uint64_t t0;

                (void) pthread_barrier_wait(&run->start);
                if (run->stop)
                        break;
                t0 = now_ns();
                touch_pass(w, run->pass);
                w->ns += now_ns() - t0;
                (void) pthread_barrier_wait(&run->end);
        }
        return NULL;
}

/* The i-th CPU this process may run on, i modulo their number. */
static int default_cpu(const cpu_set_t *allowed, unsigned i) {
        unsigned n = (unsigned) CPU_COUNT(allowed), k;

        if (n == 0)
                return 0;
        k = i % n;
        for (int c = 0; c < CPU_SETSIZE; c++)
                if (CPU_ISSET(c, allowed) && k-- == 0)
                        return c;
        return 0;
}

/* A permutation of 0..n-1 (Fisher–Yates with splitmix64 seeded by seed and the thread) */
static uint64_t *permutation(uint64_t n, uint64_t seed, unsigned thread) {
        uint64_t *a = malloc(n * sizeof *a), s = seed ^ (UINT64_C(0x51ed270b27d3f1a5) * (thread + 1));

        if (!a)
                return NULL;
        for (uint64_t i = 0; i < n; i++)
                a[i] = i;
        for (uint64_t i = n - 1; i > 0; i--) {
                uint64_t j = splitmix64(&s) % (i + 1), t = a[i];

                a[i] = a[j];
                a[j] = t;
        }
        return a;
}

/* ---------------------------------------------------------------------------------------- output --- */

static void print_result(const Run *run, const uint64_t *pass_ns, unsigned passes, uint64_t elapsed_ns,
                         const struct rusage *ru, long minflt_first_pass, uint64_t order_hash) {
        const Options *o = run->opts;
        uint64_t units = 0, checksum = 0, bytes = o->mib * MIB, pages_per_pass;
        const Worker *w0 = &run->workers[0];

        /* the pages of --page-size that hold at least one touched word, per pass */
        pages_per_pass = run->step >= o->page_size ? bytes / run->step : bytes / o->page_size;

        for (unsigned i = 0; i < o->threads; i++) {
                units += run->workers[i].units_done;
                checksum = mix(checksum, run->workers[i].checksum);
        }

        printf("{\"version\":\"%s\",", TOUCH_VERSION);
        printf("\"parameters\":{\"mib\":%" PRIu64 ",\"threads\":%u,\"cpus\":[", o->mib, o->threads);
        for (unsigned i = 0; i < o->threads; i++)
                printf("%s%d", i ? "," : "", run->workers[i].cpu);
        printf("],\"pattern\":\"%s\",", pattern_names[o->pattern]);
        if (o->pattern == PATTERN_STRIDE)
                printf("\"stride\":%" PRIu64 ",", o->stride);
        else
                printf("\"stride\":null,");
        printf("\"unit_bytes\":%" PRIu64 ",\"seed\":%" PRIu64 ",\"mode\":\"%s\",",
               run->step, o->seed, o->write ? "write" : "read");
        if (o->passes > 0)
                printf("\"passes\":%u,\"duration_s\":null,", o->passes);
        else
                printf("\"passes\":null,\"duration_s\":%.3f,", o->duration_s);
        printf("\"page_size\":%" PRIu64 ",\"hugepages\":%s},", o->page_size, o->hugepages ? "true" : "false");

        printf("\"bytes_touched\":%" PRIu64 ",\"pages_touched\":%" PRIu64 ",\"accesses\":%" PRIu64 ",",
               units * run->step, pages_per_pass * passes, units);
        printf("\"passes\":%u,\"elapsed_ns\":%" PRIu64 ",\"pass_ns\":[", passes, elapsed_ns);
        for (unsigned p = 0; p < passes; p++)
                printf("%s%" PRIu64, p ? "," : "", pass_ns[p]);
        printf("],\"per_thread\":[");
        for (unsigned i = 0; i < o->threads; i++) {
                const Worker *w = &run->workers[i];
                uint64_t b = w->units_done * run->step;
                double mib_s = w->ns > 0 ? (double) b / MIB / ((double) w->ns / 1e9) : 0;

                printf("%s{\"thread\":%u,\"cpu\":%d,\"bytes\":%" PRIu64 ",\"ns\":%" PRIu64
                       ",\"throughput_mib_s\":%.1f}", i ? "," : "", i, w->cpu, b, w->ns, mib_s);
        }
        printf("],\"checksum\":\"%016" PRIx64 "\",\"order_hash\":\"%016" PRIx64 "\",\"first_units\":[",
               checksum, order_hash);
        for (uint64_t i = 0; i < FIRST_UNITS && i < w0->count; i++)
                printf("%s%" PRIu64, i ? "," : "", w0->first + (w0->order ? w0->order[i] : i));
        printf("],\"rusage\":{\"minflt\":%ld,\"majflt\":%ld,\"nvcsw\":%ld,\"nivcsw\":%ld},"
               "\"minflt_first_pass\":%ld}\n",
               ru->ru_minflt, ru->ru_majflt, ru->ru_nvcsw, ru->ru_nivcsw, minflt_first_pass);
}

/* ---------------------------------------------------------------------------------------- main --- */

static int run_all(const Options *o) {
        Run run = { .opts = o };
        uint64_t bytes = o->mib * MIB, n_units, order_hash = 0, t_start, *pass_ns = NULL;
        size_t map_len;
        uint8_t *map;
        cpu_set_t allowed;
        struct rusage ru0, ru1;
        long minflt_first_pass = 0;
        unsigned passes = 0, started = 0;
        int r = EXIT_FAILURE, k;

        run.step = o->pattern == PATTERN_STRIDE ? o->stride : o->page_size;
        n_units = bytes / run.step;

        /* with --hugepages, align to 2 MiB inside a larger mapping so that THPs can back it */
        map_len = bytes + (o->hugepages ? 2 * MIB : 0);
        map = mmap(NULL, map_len, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
        if (map == MAP_FAILED) {
                fprintf(stderr, "memvisor-touch: cannot map %" PRIu64 " MiB: %s\n", o->mib, strerror(errno));
                return EXIT_FAILURE;
        }
        run.mem = map;
        if (o->hugepages)
                run.mem = (uint8_t *) (((uintptr_t) map + 2 * MIB - 1) & ~(uintptr_t) (2 * MIB - 1));
        /* Without --hugepages no transparent huge pages either (whatever the system's THP setting is), so
         * that the first pass faults once per page. Kernels without THP refuse both advices: with
         * --hugepages that is an error, without it there is nothing to turn off. */
        if (madvise(run.mem, bytes, o->hugepages ? MADV_HUGEPAGE : MADV_NOHUGEPAGE) < 0 &&
            (o->hugepages || errno != EINVAL)) {
                fprintf(stderr, "memvisor-touch: madvise(%s): %s\n",
                        o->hugepages ? "MADV_HUGEPAGE" : "MADV_NOHUGEPAGE", strerror(errno));
                goto out_unmap;
        }

        if (sched_getaffinity(0, sizeof allowed, &allowed) < 0) {
                fprintf(stderr, "memvisor-touch: sched_getaffinity: %s\n", strerror(errno));
                goto out_unmap;
        }

        pass_ns = calloc(MAX_PASSES, sizeof *pass_ns);
        run.workers = calloc(o->threads, sizeof *run.workers);
        if (!pass_ns || !run.workers) {
                fprintf(stderr, "memvisor-touch: out of memory\n");
                goto out_free;
        }
        for (unsigned i = 0; i < o->threads; i++) {
                Worker *w = &run.workers[i];
                uint64_t end = n_units * (i + 1) / o->threads;

                *w = (Worker) { .run = &run, .index = i, .first = n_units * i / o->threads };
                w->count = end - w->first;
                w->cpu = o->cpus ? o->cpus[i] : default_cpu(&allowed, i);
                if (o->pattern == PATTERN_RANDOM) {
                        w->order = permutation(w->count, o->seed, i);
                        if (!w->order) {
                                fprintf(stderr, "memvisor-touch: out of memory for the random order\n");
                                goto out_free;
                        }
                }
                for (uint64_t j = 0; j < w->count; j++)
                        order_hash = mix(order_hash, w->first + (w->order ? w->order[j] : j));
        }

        if (pthread_barrier_init(&run.start, NULL, o->threads + 1) != 0 ||
            pthread_barrier_init(&run.end, NULL, o->threads + 1) != 0) {
                fprintf(stderr, "memvisor-touch: pthread_barrier_init failed\n");
                goto out_free;
        }
        for (; started < o->threads; started++) {
                k = pthread_create(&run.workers[started].thread, NULL, worker_main, &run.workers[started]);
                if (k != 0) {
                        fprintf(stderr, "memvisor-touch: pthread_create: %s\n", strerror(k));
                        break;
                }
        }
        if (started < o->threads)
                /* the threads started wait at a barrier that needs all of them: end the process */
                exit(EXIT_FAILURE);

        /* every thread has tried to pin itself */
        (void) pthread_barrier_wait(&run.end);
        for (unsigned i = 0; i < o->threads; i++)
                if (run.workers[i].error != 0) {
                        fprintf(stderr, "memvisor-touch: cannot pin thread %u to CPU %d: %s\n",
                                i, run.workers[i].cpu, strerror(run.workers[i].error));
                        run.stop = true;
                }
        if (run.stop) {
                (void) pthread_barrier_wait(&run.start);
                for (unsigned i = 0; i < o->threads; i++)
                        (void) pthread_join(run.workers[i].thread, NULL);
                goto out_free;
        }

        t_start = now_ns();
        for (;;) {
                uint64_t t0 = now_ns();

                run.stop = (o->passes > 0 && passes >= o->passes) ||
                           (o->duration_s > 0 && passes > 0 && (double) (t0 - t_start) / 1e9 >= o->duration_s) ||
                           passes >= MAX_PASSES;
                run.pass = passes;
                if (passes == 0)
                        (void) getrusage(RUSAGE_SELF, &ru0);
                (void) pthread_barrier_wait(&run.start);
                if (run.stop)
                        break;
                (void) pthread_barrier_wait(&run.end);
                pass_ns[passes] = now_ns() - t0;
                if (passes == 0) {
                        (void) getrusage(RUSAGE_SELF, &ru1);
                        minflt_first_pass = ru1.ru_minflt - ru0.ru_minflt;
                }
                passes++;
        }
        for (unsigned i = 0; i < o->threads; i++)
                (void) pthread_join(run.workers[i].thread, NULL);
        (void) getrusage(RUSAGE_SELF, &ru1);

        print_result(&run, pass_ns, passes, now_ns() - t_start, &ru1, minflt_first_pass, order_hash);
        if (fflush(stdout) != 0 || ferror(stdout)) {
                fprintf(stderr, "memvisor-touch: cannot write the result: %s\n", strerror(errno));
                goto out_free;
        }
        r = EXIT_SUCCESS;

out_free:
        if (run.workers)
                for (unsigned i = 0; i < o->threads; i++)
                        free(run.workers[i].order);
        free(run.workers);
        free(pass_ns);
out_unmap:
        (void) munmap(map, map_len);
        return r;
}

int main(int argc, char **argv) {
        Options o;
        int r;

        r = parse_args(argc, argv, &o);
        if (r == 0)
                r = run_all(&o);
        free(o.cpus);
        return r;
}
