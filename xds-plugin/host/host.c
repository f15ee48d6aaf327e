/*
 * hdrmx-xds-host: calls an XDS LIB= plugin the way XDS does, for tests and benchmarks.
 *
 *   hdrmx-xds-host LIBRARY COMMAND...
 *
 * The library is dlopen()ed with RTLD_NOW | RTLD_GLOBAL, as XDS's generic_data_plugin does.
 * The commands run in order; each prints one line (or one per frame):
 *
 *   open PATH       plugin_open        -> "open ERR INFO0 INFO1 INFO2 INFO3 INFO4"
 *   header          plugin_get_header  -> "header ERR NX NY NBYTES QX QY FRAMES"
 *   threads N       the following data and bench commands call from N threads (default 1)
 *   shuffle SEED    ... in a shuffled order (SEED 0: in list order, the default)
 *   out FILE        the next data command writes its frames to FILE: int32, in list order
 *   size NX NY      ask for frames of NX x NY from now on (default: what the header said)
 *   data LIST       plugin_get_data for each frame of LIST -> "frame N ERR" per frame, in list
 *                   order, then "data CALLS FAILED"
 *   bench LIST R    LIST R times over -> "bench THREADS CALLS WALL_S MEDIAN_MS MS_PER_FRAME FAILED
 *                   MEDIAN_CPU_MS": the median time per call, the wall time per frame of the
 *                   whole run, and the median CPU time per call of the calling thread (which
 *                   other work on the machine does not inflate)
 *   close           plugin_close       -> "close ERR"
 *
 * LIST is "all" (1 to the header's frame count) or ranges and numbers such as "1-10,15".
 * Threads take the next call from a shared counter and each has its own frame buffer, as
 * XDS's OpenMP loop does. Before each data call the buffer is filled with junk that changes
 * from call to call, so pixels a plugin leaves unwritten show up in the output. A flag the
 * plugin does not set reads as 12345.
 */
#define _POSIX_C_SOURCE 200809L
#include <dlfcn.h>
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

typedef void (*open_fn)(const char *, int *, int *);
typedef void (*header_fn)(int *, int *, int *, float *, float *, int *, int *, int *);
typedef void (*data_fn)(int *, int *, int *, int *, int *, int *);
typedef void (*close_fn)(int *);

static open_fn plugin_open;
static header_fn plugin_get_header;
static data_fn plugin_get_data;
static close_fn plugin_close;

/* XDS's side of the info array: consumer id 1 (XDS) and a version. */
static void consumer_info(int info[1024]) {
    memset(info, 0, 1024 * sizeof(int));
    info[0] = 1;
    info[1] = 20240101;
}

static void die(const char *what, const char *detail) {
    fprintf(stderr, "hdrmx-xds-host: %s%s%s\n", what, detail ? ": " : "", detail ? detail : "");
    exit(2);
}

static void *symbol(void *lib, const char *name) {
    void *f = dlsym(lib, name);
    if (!f) die("missing symbol", name);
    return f;
}

static double now(void) {
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return (double)t.tv_sec + (double)t.tv_nsec * 1e-9;
}

static double thread_cpu(void) {
    struct timespec t;
    clock_gettime(CLOCK_THREAD_CPUTIME_ID, &t);
    return (double)t.tv_sec + (double)t.tv_nsec * 1e-9;
}

/* A frame list from "all" or "1-10,15". */
static int *parse_list(const char *spec, int frames, size_t *n) {
    size_t cap = 16, len = 0;
    int *list = malloc(cap * sizeof(int));
    if (!list) die("out of memory", NULL);
    if (strcmp(spec, "all") == 0) {
        free(list);
        list = malloc((frames > 0 ? (size_t)frames : 1) * sizeof(int));
        if (!list) die("out of memory", NULL);
        for (int i = 0; i < frames; i++) list[i] = i + 1;
        *n = frames > 0 ? (size_t)frames : 0;
        return list;
    }
    const char *p = spec;
    while (*p) {
        char *end;
        long a = strtol(p, &end, 10), b = a;
        if (end == p) die("bad frame list", spec);
        p = end;
        if (*p == '-' && p[1] >= '0' && p[1] <= '9') {
            b = strtol(p + 1, &end, 10);
            p = end;
        }
        for (long v = a; v <= b; v++) {
            if (len == cap) {
                cap *= 2;
                list = realloc(list, cap * sizeof(int));
                if (!list) die("out of memory", NULL);
            }
            list[len++] = (int)v;
        }
        if (*p == ',') p++;
        else if (*p) die("bad frame list", spec);
    }
    *n = len;
    return list;
}

/* One data or bench command: the calls, and what each gave. */
struct run {
    const int *frames;    /* frame numbers, list order */
    const size_t *order;  /* call k is list entry order[k % n] */
    size_t n, calls;
    int nx, ny;
    int junk;             /* fill buffers with junk before each call */
    int fd;               /* output file or -1 */
    atomic_size_t next;
    int *err;             /* per call */
    double *ms, *cpu_ms;  /* per call: elapsed, and CPU time of the calling thread */
};

static void *worker(void *arg) {
    struct run *r = arg;
    size_t pixels = (size_t)(r->nx > 0 ? r->nx : 1) * (size_t)(r->ny > 0 ? r->ny : 1);
    int *buf = malloc(pixels * sizeof(int));
    if (!buf) die("out of memory for a frame buffer", NULL);
    memset(buf, 0, pixels * sizeof(int));
    int info[1024];
    for (;;) {
        size_t k = atomic_fetch_add(&r->next, 1);
        if (k >= r->calls) break;
        size_t entry = r->order[k % r->n];
        int frame = r->frames[entry], nx = r->nx, ny = r->ny, err = 12345;
        if (r->junk) {
            int v = (int)(0x5A5A5A5Au ^ (uint32_t)(k * 2654435761u));
            for (size_t i = 0; i < pixels; i++) buf[i] = v;
        }
        consumer_info(info);
        double t = now(), c = thread_cpu();
        plugin_get_data(&frame, &nx, &ny, buf, info, &err);
        r->ms[k] = (now() - t) * 1e3;
        r->cpu_ms[k] = (thread_cpu() - c) * 1e3;
        r->err[k] = err;
        if (r->fd >= 0 && err == 0) {
            size_t bytes = pixels * sizeof(int);
            if (pwrite(r->fd, buf, bytes, (off_t)(entry * bytes)) != (ssize_t)bytes)
                die("writing the output", strerror(errno));
        }
    }
    free(buf);
    return NULL;
}

static int cmp_double(const void *a, const void *b) {
    double x = *(const double *)a, y = *(const double *)b;
    return (x > y) - (x < y);
}

/* Runs LIST (repeat times) on `threads` threads; returns the wall time in seconds. */
static double run_calls(struct run *r, int threads, unsigned long long seed, int repeat) {
    size_t *order = malloc((r->n ? r->n : 1) * sizeof(size_t));
    if (!order) die("out of memory", NULL);
    for (size_t i = 0; i < r->n; i++) order[i] = i;
    if (seed) {
        unsigned long long s = seed;
        for (size_t i = r->n; i > 1; i--) {
            s ^= s << 13;
            s ^= s >> 7;
            s ^= s << 17;
            size_t j = (size_t)(s % i);
            size_t t = order[i - 1];
            order[i - 1] = order[j];
            order[j] = t;
        }
    }
    r->order = order;
    r->calls = r->n * (size_t)repeat;
    atomic_init(&r->next, 0);
    r->err = malloc((r->calls ? r->calls : 1) * sizeof(int));
    r->ms = malloc((r->calls ? r->calls : 1) * sizeof(double));
    r->cpu_ms = malloc((r->calls ? r->calls : 1) * sizeof(double));
    if (!r->err || !r->ms || !r->cpu_ms) die("out of memory", NULL);
    pthread_t *tid = malloc((size_t)threads * sizeof(pthread_t));
    if (!tid) die("out of memory", NULL);
    double t = now();
    for (int i = 0; i < threads; i++)
        if (pthread_create(&tid[i], NULL, worker, r) != 0) die("pthread_create", NULL);
    for (int i = 0; i < threads; i++) pthread_join(tid[i], NULL);
    double wall = now() - t;
    free(tid);
    return wall;
}

int main(int argc, char **argv) {
    if (argc < 2) {
        fprintf(stderr, "usage: hdrmx-xds-host LIBRARY COMMAND... (see host.c)\n");
        return 2;
    }
    setvbuf(stdout, NULL, _IOLBF, 0);
    void *lib = dlopen(argv[1], RTLD_NOW | RTLD_GLOBAL);
    if (!lib) die("dlopen", dlerror());
    *(void **)&plugin_open = symbol(lib, "plugin_open");
    *(void **)&plugin_get_header = symbol(lib, "plugin_get_header");
    *(void **)&plugin_get_data = symbol(lib, "plugin_get_data");
    *(void **)&plugin_close = symbol(lib, "plugin_close");

    int nx = 0, ny = 0, frames = 0, threads = 1;
    unsigned long long seed = 0;
    const char *out = NULL;
    for (int a = 2; a < argc; a++) {
        const char *cmd = argv[a];
        int more = argc - a - 1;
        if (strcmp(cmd, "open") == 0 && more >= 1) {
            int info[1024], err = 12345;
            consumer_info(info);
            plugin_open(argv[++a], info, &err);
            printf("open %d %d %d %d %d %d\n", err, info[0], info[1], info[2], info[3], info[4]);
        } else if (strcmp(cmd, "header") == 0) {
            int info[1024], nbytes = 0, err = 12345;
            float qx = 0, qy = 0;
            consumer_info(info);
            plugin_get_header(&nx, &ny, &nbytes, &qx, &qy, &frames, info, &err);
            printf("header %d %d %d %d %.9g %.9g %d\n", err, nx, ny, nbytes, qx, qy, frames);
        } else if (strcmp(cmd, "threads") == 0 && more >= 1) {
            threads = atoi(argv[++a]);
            if (threads < 1) die("threads must be at least 1", argv[a]);
        } else if (strcmp(cmd, "shuffle") == 0 && more >= 1) {
            seed = strtoull(argv[++a], NULL, 10);
        } else if (strcmp(cmd, "out") == 0 && more >= 1) {
            out = argv[++a];
        } else if (strcmp(cmd, "size") == 0 && more >= 2) {
            nx = atoi(argv[++a]);
            ny = atoi(argv[++a]);
        } else if ((strcmp(cmd, "data") == 0 && more >= 1) ||
                   (strcmp(cmd, "bench") == 0 && more >= 2)) {
            int bench = cmd[0] == 'b';
            struct run r;
            memset(&r, 0, sizeof r);
            size_t n;
            int *list = parse_list(argv[++a], frames, &n);
            int repeat = bench ? atoi(argv[++a]) : 1;
            if (repeat < 1) die("bench repeats must be at least 1", argv[a]);
            r.frames = list;
            r.n = n;
            r.nx = nx;
            r.ny = ny;
            r.junk = !bench;
            r.fd = -1;
            if (out && !bench) {
                r.fd = open(out, O_CREAT | O_TRUNC | O_WRONLY, 0644);
                if (r.fd < 0) die(out, strerror(errno));
                out = NULL;
            }
            double wall = run_calls(&r, threads, seed, repeat);
            if (r.fd >= 0) close(r.fd);
            size_t failed = 0;
            for (size_t k = 0; k < r.calls; k++) failed += r.err[k] != 0;
            if (bench) {
                qsort(r.ms, r.calls, sizeof(double), cmp_double);
                qsort(r.cpu_ms, r.calls, sizeof(double), cmp_double);
                double median = r.calls ? r.ms[r.calls / 2] : 0;
                double cpu = r.calls ? r.cpu_ms[r.calls / 2] : 0;
                printf("bench %d %zu %.6f %.4f %.4f %zu %.4f\n", threads, r.calls, wall, median,
                       r.calls ? wall * 1e3 / (double)r.calls : 0, failed, cpu);
            } else {
                /* One call per list entry: report them in list order. */
                int *by_entry = malloc((n ? n : 1) * sizeof(int));
                if (!by_entry) die("out of memory", NULL);
                for (size_t k = 0; k < r.calls; k++) by_entry[r.order[k]] = r.err[k];
                for (size_t i = 0; i < n; i++) printf("frame %d %d\n", list[i], by_entry[i]);
                printf("data %zu %zu\n", r.calls, failed);
                free(by_entry);
            }
            free((void *)r.order);
            free(r.err);
            free(r.ms);
            free(r.cpu_ms);
            free(list);
        } else if (strcmp(cmd, "close") == 0) {
            int err = 12345;
            plugin_close(&err);
            printf("close %d\n", err);
        } else {
            die("unknown command or missing argument", cmd);
        }
    }
    return 0;
}
