/* chello: a C guest. Prints its arguments, formats numbers, uses the heap and the clock.
 *   chello [ARGS...]          greeting, then "argv[i] = ARG" for each argument
 *   chello --sum N...         the sum of the numbers (strtol), in decimal, hex and octal
 *   chello --sort WORD...     the words sorted (qsort + strcmp), copied with strdup
 *   chello --env NAME         the value of an environment variable, or "(unset)"
 *   chello --cat              standard input to standard output, line by line (fgets)
 *   chello --exit N           exits with status N
 *   chello --assert           fails an assertion (the run ends like a guest panic)
 *   chello --append NAME TEXT appends "TEXT\n" to the byte-stream object NAME (created and also
 *                             bound to NAME-alias on first use), flushes, prints its size and,
 *                             read back through a read-only handle opened by ID, its bytes
 *   chello --push LIST WORD   in one transaction: allocates a node holding WORD inside a new
 *                             object and puts it in front of the list in object LIST
 *   chello --push-abort LIST WORD  the same, then aborts: the list stays as it was
 *   chello --words LIST       the list's words, first to last, then the result of resolving
 *                             the null pointer at its end
 */
#include <assert.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <twz.h>

static int cmp_str(const void *a, const void *b) {
    return strcmp(*(char *const *)a, *(char *const *)b);
}

static int sum(int argc, char **argv) {
    long long total = 0;
    for (int i = 2; i < argc; i++) {
        char *end;
        long v = strtol(argv[i], &end, 0);
        if (*end || end == argv[i]) {
            fprintf(stderr, "chello: not a number: '%s'\n", argv[i]);
            return 2;
        }
        total += v;
    }
    printf("sum = %lld = %#llx = %llo (%+.3e)\n", total, (unsigned long long)total,
           (unsigned long long)total, (double)total);
    return 0;
}

static int sort(int argc, char **argv) {
    int n = argc - 2;
    char **words = calloc((size_t)(n > 0 ? n : 1), sizeof *words);
    assert(words != NULL);
    for (int i = 0; i < n; i++) words[i] = strdup(argv[i + 2]);
    qsort(words, (size_t)n, sizeof *words, cmp_str);
    for (int i = 0; i < n; i++) {
        printf("%-10s|%5zu\n", words[i], strlen(words[i]));
        free(words[i]);
    }
    free(words);
    return 0;
}

static int cat(void) {
    char line[64];
    while (fgets(line, sizeof line, stdin)) fputs(line, stdout);
    return ferror(stdin) ? 1 : 0;
}

/* The object C API (twz.h) on a byte-stream object. */
static int append(const char *name, const char *text) {
    twz_obj *o, *again, *ro;
    int rc = twz_obj_open(name, &o);
    if (rc == -ENOENT) {
        rc = twz_obj_create(name, &o);
        if (rc == 0) {
            char alias[128];
            snprintf(alias, sizeof alias, "%s-alias", name);
            rc = twz_obj_bind(o, alias);
        }
        printf("created %s\n", name);
    }
    if (rc != 0) {
        char why[256]; /* a refused map says why (for example which capability is missing) */
        fprintf(stderr, "chello: object %s: %s\n", name,
                rc == -EACCES && twz_last_error(why, sizeof why) ? why : strerror(-rc));
        return 1;
    }
    printf("create again: %s\n", strerror(-twz_obj_create(name, &again)));
    int64_t size = twz_obj_size(o);
    size_t n = strlen(text);
    char *base = twz_obj_base(o);
    if (size < 0 || !base || (uint64_t)size + n + 1 > twz_obj_max_size()) return 1;
    memcpy(base + size, text, n);
    base[size + n] = '\n';
    if (twz_obj_set_size(o, (uint64_t)size + n + 1) != 0 || twz_obj_flush(o, (uint64_t)size, n + 1) != 0)
        return 1;
    twz_objid id;
    if (twz_obj_id(o, &id) != 0 || twz_obj_open_id(&id, 0, &ro) != 0) return 1;
    int64_t now = twz_obj_size(ro);
    printf("size %lld\n", (long long)now);
    fwrite(twz_obj_base(ro), 1, (size_t)now, stdout);
    printf("beyond the end: %s\n", strerror(-twz_obj_flush(o, twz_obj_max_size(), 1)));
    twz_obj_close(ro);
    twz_obj_close(o);
    return 0;
}

/* ---- Transactions and persistent pointers (twz.h), on a list of words across objects ---- */
struct list_head {
    twz_ptr first;
    uint64_t count;
};
struct word_node {
    twz_ptr next;
    char word[];
};

static int fail(const char *what, int rc) {
    fprintf(stderr, "chello: %s: %s\n", what, strerror(-rc));
    return 1;
}

static int push(const char *list, const char *word, int abort_it) {
    twz_obj *lo, *no;
    twz_tx *tx;
    void *mem, *first = NULL;
    int rc = twz_obj_open(list, &lo);
    if (rc == -ENOENT) rc = twz_obj_create(list, &lo);
    if (rc != 0) return fail(list, rc);
    if ((rc = twz_obj_create(NULL, &no)) != 0) return fail("node object", rc);
    struct list_head *h = twz_obj_base(lo);
    if ((rc = twz_tx_begin(lo, &tx)) != 0) return fail("begin", rc);
    size_t n = strlen(word) + 1;
    if ((rc = twz_obj_alloc(tx, no, sizeof(struct word_node) + n, &mem)) != 0) return fail("alloc", rc);
    struct word_node *node = mem;
    memcpy(node->word, word, n);
    if (h->first && (rc = twz_ptr_resolve(&h->first, &first)) != 0) return fail("resolve", rc);
    if ((rc = twz_ptr_store(no, &node->next, first)) != 0) return fail("store next", rc);
    if ((rc = twz_tx_record(tx, h, sizeof *h)) != 0) return fail("record", rc);
    if ((rc = twz_ptr_store(lo, &h->first, node)) != 0) return fail("store first", rc);
    h->count++;
    rc = abort_it ? twz_tx_abort(tx) : twz_tx_commit(tx);
    if (rc != 0) return fail("end", rc);
    printf("%s %s, count %llu\n", abort_it ? "aborted" : "pushed", word, (unsigned long long)h->count);
    twz_obj_close(no);
    twz_obj_close(lo);
    return 0;
}

static int words(const char *list) {
    twz_obj *lo;
    int rc = twz_obj_open(list, &lo);
    if (rc != 0) return fail(list, rc);
    struct list_head *h = twz_obj_base(lo);
    const twz_ptr *link = &h->first;
    void *at;
    while ((rc = twz_ptr_resolve(link, &at)) == 0) {
        struct word_node *node = at;
        printf("%s\n", node->word);
        link = &node->next;
    }
    printf("end: %s\n", strerror(-rc));
    twz_obj_close(lo);
    return 0;
}

int main(int argc, char **argv) {
    if (argc == 4 && strcmp(argv[1], "--push") == 0) return push(argv[2], argv[3], 0);
    if (argc == 4 && strcmp(argv[1], "--push-abort") == 0) return push(argv[2], argv[3], 1);
    if (argc == 3 && strcmp(argv[1], "--words") == 0) return words(argv[2]);
    if (argc == 4 && strcmp(argv[1], "--append") == 0) return append(argv[2], argv[3]);
    if (argc >= 2 && strcmp(argv[1], "--sum") == 0) return sum(argc, argv);
    if (argc >= 2 && strcmp(argv[1], "--sort") == 0) return sort(argc, argv);
    if (argc == 3 && strcmp(argv[1], "--env") == 0) {
        const char *v = getenv(argv[2]);
        printf("%s=%s\n", argv[2], v ? v : "(unset)");
        return 0;
    }
    if (argc == 2 && strcmp(argv[1], "--cat") == 0) return cat();
    if (argc == 3 && strcmp(argv[1], "--exit") == 0) return atoi(argv[2]);
    if (argc == 2 && strcmp(argv[1], "--assert") == 0) {
        printf("before the assertion\n");
        assert(argc == 99);
        printf("not reached\n");
    }

    printf("Hello from C in a twz guest! (%d argument%s)\n", argc - 1, argc == 2 ? "" : "s");
    for (int i = 1; i < argc; i++) printf("argv[%d] = %s\n", i, argv[i]);
    assert(argv[argc] == NULL);

    /* The heap: a growing buffer, checked. */
    size_t cap = 16, len = 0;
    char *buf = malloc(cap);
    for (int i = 0; i < 1000; i++) {
        char item[16];
        int n = snprintf(item, sizeof item, "%d,", i);
        if (len + (size_t)n + 1 > cap) {
            cap *= 2;
            char *grown = realloc(buf, cap);
            if (!grown) {
                fprintf(stderr, "chello: out of memory\n");
                return 1;
            }
            buf = grown;
        }
        memcpy(buf + len, item, (size_t)n + 1);
        len += (size_t)n;
    }
    printf("built %zu bytes in a %zu-byte buffer, ends with \"%s\"\n", len, cap, buf + len - 4);
    free(buf);

    struct timespec t;
    int ok = clock_gettime(CLOCK_REALTIME, &t) == 0 && t.tv_sec > 1600000000;
    printf("clock: %s; pi = %.5f, e = %g, 2^-10 = %e\n", ok ? "ok" : "WRONG", 3.14159265358979,
           2.718281828459045, 1.0 / 1024);
    return 0;
}
