/* A SQLite shell for twz guests that behaves like the sqlite3 command-line shell (3.40) in its
 * common modes, so its output can be diffed against the host's:
 *
 *   sqlite [OPTIONS] [DB [SQL...]]
 *     DB        database name; ":memory:" (the default) or a name (see vfs.h for where it lives)
 *     SQL...    one-shot: run each argument (SQL or a dot-command) and exit; the first error
 *               prints "Error: ..." and exits with its result code (1 for a syntax error)
 *     otherwise statements are read from standard input, ended by ';' (sqlite3_complete)
 *   OPTIONS: -header -noheader -list -csv -column -line -bail -interactive -batch -version
 *
 * Dot-commands: .headers .mode .tables .schema .read .timer .nullvalue .separator .print .bail
 * .help .quit .exit. `.read NAME` runs the script held in the byte-stream object NAME (the guest
 * has no host files: put one there with `twz-vmm obj import NAME FILE`). Errors go to stderr as
 * the sqlite3 shell prints them ("Parse error near line N:" with the error's position, "Runtime
 * error near line N: ... (code)"; without "near line N" when typed at a terminal); reading a
 * script, the exit status is 1 if any statement failed. Prompts ("sqlite> ", "   ...> ") and
 * the banner appear only when the VMM's standard input is a terminal (or with -interactive). */
#include <sqlite3.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <twz.h>
#include "vfs.h"

enum mode { MODE_LIST, MODE_CSV, MODE_COLUMN, MODE_LINE };

struct shell {
    sqlite3 *db;
    enum mode mode;
    int headers;
    int headers_set; /* .headers given: .mode column leaves it alone */
    int timer;
    int bail;
    int interactive;
    char sep[20];
    char rowsep[20];
    char nullvalue[20];
};

/* Result of a dot-command. */
enum meta { META_OK, META_ERROR, META_QUIT };

static int is_space(char c) { return c == ' ' || (c >= '\t' && c <= '\r'); }

/* ---- output modes ---- */

/* A value as text, or NULL for SQL NULL. */
static const char *text_or_null(const struct shell *sh, sqlite3_stmt *st, int i) {
    (void)sh;
    return (const char *)sqlite3_column_text(st, i);
}

/* CSV quoting as sqlite3 does it: quote empty strings and any value holding a space, a quote, a
 * control or non-ASCII byte, or the separator. */
static void put_csv(const struct shell *sh, const char *z) {
    if (!z) {
        fputs(sh->nullvalue, stdout);
        return;
    }
    int quote = z[0] == 0 || strstr(z, sh->sep) != NULL;
    for (const unsigned char *p = (const unsigned char *)z; *p && !quote; p++)
        quote = *p <= ' ' || *p == '"' || *p == '\'' || *p >= 0x7f;
    if (!quote) {
        fputs(z, stdout);
        return;
    }
    putchar('"');
    for (; *z; z++) {
        if (*z == '"') putchar('"');
        putchar(*z);
    }
    putchar('"');
}

static void put_field(const struct shell *sh, const char *z) {
    if (sh->mode == MODE_CSV) put_csv(sh, z);
    else fputs(z ? z : sh->nullvalue, stdout);
}

/* Display width: UTF-8 characters (continuation bytes do not count). */
static int width_of(const char *z) {
    int n = 0;
    for (; *z; z++) n += ((unsigned char)*z & 0xc0) != 0x80;
    return n;
}

static void put_padded(const char *z, int w) {
    fputs(z, stdout);
    for (int n = width_of(z); n < w; n++) putchar(' ');
}

static void put_dashes(int n) {
    for (int i = 0; i < n; i++) putchar('-');
}

/* list and csv: a header line before the first row, fields joined by the separator. */
static void row_list(const struct shell *sh, sqlite3_stmt *st, int first) {
    int n = sqlite3_column_count(st);
    if (first && sh->headers) {
        for (int i = 0; i < n; i++) {
            put_field(sh, sqlite3_column_name(st, i));
            fputs(i < n - 1 ? sh->sep : sh->rowsep, stdout);
        }
    }
    for (int i = 0; i < n; i++) {
        put_field(sh, text_or_null(sh, st, i));
        fputs(i < n - 1 ? sh->sep : sh->rowsep, stdout);
    }
}

/* line: "name = value", names right-aligned to the longest (at least 5); a blank line between
 * rows of one statement. */
static void row_line(const struct shell *sh, sqlite3_stmt *st, int first) {
    int n = sqlite3_column_count(st), w = 5;
    for (int i = 0; i < n; i++) {
        int len = (int)strlen(sqlite3_column_name(st, i));
        if (len > w) w = len;
    }
    if (!first) fputs(sh->rowsep, stdout);
    for (int i = 0; i < n; i++) {
        const char *z = text_or_null(sh, st, i);
        printf("%*s = %s%s", w, sqlite3_column_name(st, i), z ? z : sh->nullvalue, sh->rowsep);
    }
}

/* column: the whole result is gathered first, each column as wide as its longest value or name. */
static int run_columnar(const struct shell *sh, sqlite3_stmt *st) {
    int rc = sqlite3_step(st);
    if (rc != SQLITE_ROW) return rc;
    int n = sqlite3_column_count(st);
    size_t cap = 64, used = 0;
    char **cells = malloc(cap * sizeof *cells);
    int *width = calloc((size_t)n, sizeof *width);
    if (!cells || !width) {
        free(cells);
        free(width);
        return SQLITE_NOMEM;
    }
    for (int i = 0; i < n; i++) {
        cells[used++] = sqlite3_mprintf("%s", sqlite3_column_name(st, i));
        if (used == cap) break;
    }
    while (rc == SQLITE_ROW) {
        for (int i = 0; i < n; i++) {
            if (used == cap) {
                char **grown = realloc(cells, cap * 2 * sizeof *cells);
                if (!grown) {
                    rc = SQLITE_NOMEM;
                    goto done;
                }
                cells = grown;
                cap *= 2;
            }
            const char *z = text_or_null(sh, st, i);
            cells[used++] = z ? sqlite3_mprintf("%s", z) : NULL;
        }
        rc = sqlite3_step(st);
    }
    for (size_t k = 0; k < used; k++) {
        int w = width_of(cells[k] ? cells[k] : sh->nullvalue);
        if (w > width[k % (size_t)n]) width[k % (size_t)n] = w;
    }
    if (sh->headers) {
        for (int i = 0; i < n; i++) {
            put_padded(cells[i] ? cells[i] : "", width[i]);
            fputs(i == n - 1 ? "\n" : "  ", stdout);
        }
        for (int i = 0; i < n; i++) {
            put_dashes(width[i]);
            fputs(i == n - 1 ? "\n" : "  ", stdout);
        }
    }
    for (size_t k = (size_t)n; k < used; k++) {
        int i = (int)(k % (size_t)n);
        put_padded(cells[k] ? cells[k] : sh->nullvalue, width[i]);
        fputs(i == n - 1 ? "\n" : "  ", stdout);
    }
done:
    for (size_t k = 0; k < used; k++) sqlite3_free(cells[k]);
    free(cells);
    free(width);
    return rc;
}

/* Steps a prepared statement to the end, printing its rows: SQLITE_DONE or the error. */
static int run_stmt(const struct shell *sh, sqlite3_stmt *st) {
    if (sh->mode == MODE_COLUMN) return run_columnar(sh, st);
    int rc, first = 1;
    while ((rc = sqlite3_step(st)) == SQLITE_ROW) {
        if (sh->mode == MODE_LINE) row_line(sh, st, first);
        else row_list(sh, st, first);
        first = 0;
    }
    return rc;
}

/* ---- errors ---- */

/* The statement around the error position with a caret under it, as sqlite3 shows it. */
static char *context_for(sqlite3 *db, const char *sql) {
    int off = sqlite3_error_offset(db);
    if (!sql || off < 0) return sqlite3_mprintf("");
    while (off > 50) {
        off--;
        sql++;
        while ((sql[0] & 0xc0) == 0x80) {
            sql++;
            off--;
        }
    }
    size_t len = strlen(sql);
    if (len > 78) {
        len = 78;
        while ((sql[len] & 0xc0) == 0x80) len--;
    }
    char *code = sqlite3_mprintf("%.*s", (int)len, sql);
    if (!code) return NULL;
    for (int i = 0; code[i]; i++)
        if (is_space(code[i])) code[i] = ' ';
    if (off < 25) return sqlite3_mprintf("\n  %z\n  %*s^--- error here", code, off, "");
    return sqlite3_mprintf("\n  %z\n  %*serror here ---^", code, off - 14, "");
}

/* "PHASE, message[ (rc)][context]" like the sqlite3 shell's save_err_msg. */
static char *error_message(sqlite3 *db, const char *phase, int rc, const char *sql) {
    char *msg = sqlite3_mprintf("%s, %s", phase, sqlite3_errmsg(db));
    if (msg && rc > 1) msg = sqlite3_mprintf("%z (%d)", msg, rc);
    if (msg && sql) msg = sqlite3_mprintf("%z%z", msg, context_for(db, sql));
    return msg;
}

/* Runs every statement in `sql`; on the first error stops, sets *err (sqlite3_free it) and
 * returns the code. */
static int run_sql(struct shell *sh, const char *sql, char **err) {
    *err = NULL;
    while (*sql) {
        sqlite3_stmt *st = NULL;
        const char *tail = NULL;
        int rc = sqlite3_prepare_v2(sh->db, sql, -1, &st, &tail);
        if (rc != SQLITE_OK) {
            *err = error_message(sh->db, "in prepare", rc, sql);
            return rc;
        }
        if (st) {
            rc = run_stmt(sh, st);
            int rc2 = sqlite3_finalize(st);
            if (rc != SQLITE_DONE && rc != SQLITE_ROW) {
                if (rc == SQLITE_NOMEM || rc2 == SQLITE_OK) rc2 = rc;
                *err = error_message(sh->db, "stepping", rc2, NULL);
                return rc2;
            }
        }
        sql = tail;
        while (is_space(*sql)) sql++;
    }
    return SQLITE_OK;
}

/* ---- dot-commands ---- */

/* Splits a dot-command line into at most `max` words ('...' and "..." quote). */
static int split_args(char *line, char **argv, int max) {
    int n = 0;
    char *p = line;
    while (*p && n < max) {
        while (is_space(*p)) p++;
        if (!*p) break;
        if (*p == '\'' || *p == '"') {
            char q = *p++;
            argv[n++] = p;
            while (*p && *p != q) p++;
        } else {
            argv[n++] = p;
            while (*p && !is_space(*p)) p++;
        }
        if (*p) *p++ = 0;
    }
    return n;
}

static int parse_bool(const char *z, int *out) {
    static const char *const yes[] = {"on", "yes", "true", "1"};
    static const char *const no[] = {"off", "no", "false", "0"};
    for (int i = 0; i < 4; i++) {
        if (strcasecmp(z, yes[i]) == 0) return *out = 1, 1;
        if (strcasecmp(z, no[i]) == 0) return *out = 0, 1;
    }
    return 0;
}

static void set_mode(struct shell *sh, enum mode m) {
    sh->mode = m;
    strcpy(sh->sep, m == MODE_CSV ? "," : "|");
    strcpy(sh->rowsep, m == MODE_CSV ? "\r\n" : "\n");
    if (m == MODE_COLUMN && !sh->headers_set) sh->headers = 1;
}

/* .tables: names in columns, as many as fit in 80 characters, filled top to bottom. */
static enum meta cmd_tables(struct shell *sh, const char *pattern) {
    sqlite3_stmt *st;
    const char *q =
        "SELECT name FROM sqlite_schema WHERE type IN ('table','view') AND name NOT LIKE "
        "'sqlite_%' AND (?1 IS NULL OR name LIKE ?1) ORDER BY 1";
    if (sqlite3_prepare_v2(sh->db, q, -1, &st, NULL) != SQLITE_OK) {
        fprintf(stderr, "Error: %s\n", sqlite3_errmsg(sh->db));
        return META_ERROR;
    }
    sqlite3_bind_text(st, 1, pattern, -1, SQLITE_STATIC);
    char **names = NULL;
    int n = 0, cap = 0, maxlen = 0;
    while (sqlite3_step(st) == SQLITE_ROW) {
        if (n == cap) {
            cap = cap ? cap * 2 : 16;
            char **grown = realloc(names, (size_t)cap * sizeof *names);
            if (!grown) break;
            names = grown;
        }
        names[n] = sqlite3_mprintf("%s", sqlite3_column_text(st, 0));
        if (!names[n]) break;
        int len = (int)strlen(names[n]);
        if (len > maxlen) maxlen = len;
        n++;
    }
    sqlite3_finalize(st);
    if (n > 0) {
        int cols = 80 / (maxlen + 2);
        if (cols < 1) cols = 1;
        int rows = (n + cols - 1) / cols;
        for (int i = 0; i < rows; i++) {
            for (int j = i; j < n; j += rows) printf("%s%-*s", j < rows ? "" : "  ", maxlen, names[j]);
            putchar('\n');
        }
    }
    for (int i = 0; i < n; i++) sqlite3_free(names[i]);
    free(names);
    return META_OK;
}

/* A column name as the sqlite3 shell quotes it in a view's comment: bare when it is a plain
 * identifier and not a keyword, else in double quotes. */
static char *quoted_column(const char *z) {
    int plain = (z[0] == '_' || ((z[0] | 0x20) >= 'a' && (z[0] | 0x20) <= 'z')) &&
                !sqlite3_keyword_check(z, (int)strlen(z));
    for (const char *p = z; *p && plain; p++)
        plain = *p == '_' || (*p >= '0' && *p <= '9') || ((*p | 0x20) >= 'a' && (*p | 0x20) <= 'z');
    return plain ? sqlite3_mprintf("%s", z) : sqlite3_mprintf("\"%w\"", z);
}

/* A view's column names, in the comment sqlite3 prints after the view (holding "v(a,b)"). */
static void put_view_columns(struct shell *sh, const char *view) {
    sqlite3_stmt *st;
    if (sqlite3_prepare_v2(sh->db, "SELECT name FROM pragma_table_info(?1)", -1, &st, NULL) !=
        SQLITE_OK)
        return;
    sqlite3_bind_text(st, 1, view, -1, SQLITE_STATIC);
    printf("\n/* %s(", view);
    for (int i = 0; sqlite3_step(st) == SQLITE_ROW; i++) {
        char *q = quoted_column((const char *)sqlite3_column_text(st, 0));
        printf("%s%s", i ? "," : "", q ? q : "");
        sqlite3_free(q);
    }
    printf(") */");
    sqlite3_finalize(st);
}

/* .schema: the CREATE statements in the order they were made, each ended by ';', as sqlite3
 * prints them: a table whose name was quoted (as ALTER TABLE RENAME writes it) as "CREATE TABLE
 * IF NOT EXISTS", a view followed by a comment naming its columns. */
static enum meta cmd_schema(struct shell *sh, const char *pattern) {
    sqlite3_stmt *st;
    const char *q = "SELECT sql, type, name FROM sqlite_schema WHERE sql NOTNULL AND type != 'meta' "
                    "AND (?1 IS NULL OR tbl_name LIKE ?1) ORDER BY rowid";
    if (sqlite3_prepare_v2(sh->db, q, -1, &st, NULL) != SQLITE_OK) {
        fprintf(stderr, "Error: %s\n", sqlite3_errmsg(sh->db));
        return META_ERROR;
    }
    sqlite3_bind_text(st, 1, pattern, -1, SQLITE_STATIC);
    while (sqlite3_step(st) == SQLITE_ROW) {
        const char *sql = (const char *)sqlite3_column_text(st, 0);
        const char *type = (const char *)sqlite3_column_text(st, 1);
        if (sqlite3_strglob("CREATE TABLE ['\"]*", sql) == 0)
            printf("CREATE TABLE IF NOT EXISTS %s", sql + 13);
        else
            fputs(sql, stdout);
        if (strcmp(type, "view") == 0) {
            char *name = sqlite3_mprintf("%s", sqlite3_column_text(st, 2));
            if (name) put_view_columns(sh, name);
            sqlite3_free(name);
        }
        puts(";");
    }
    sqlite3_finalize(st);
    return META_OK;
}

static const char HELP[] =
    ".bail on|off             Stop after hitting an error.  Default OFF\n"
    ".exit ?CODE?             Exit this program with return-code CODE\n"
    ".headers on|off          Turn display of headers on or off\n"
    ".help                    Show this message\n"
    ".mode MODE               Set output mode: list csv column line\n"
    ".nullvalue STRING        Use STRING in place of NULL values\n"
    ".print STRING...         Print literal STRING\n"
    ".quit                    Exit this program\n"
    ".read NAME               Read input from the byte-stream object NAME\n"
    ".schema ?PATTERN?        Show the CREATE statements matching PATTERN\n"
    ".separator COL ?ROW?     Change the column and row separators\n"
    ".tables ?PATTERN?        List names of tables matching LIKE pattern PATTERN\n"
    ".timer on|off            Turn SQL timer on or off\n";

static enum meta cmd_read(struct shell *sh, const char *name, int *exit_code);

static enum meta meta_command(struct shell *sh, const char *line, int *exit_code) {
    char *copy = sqlite3_mprintf("%s", line + 1);
    if (!copy) return META_ERROR;
    char *argv[8];
    int argc = split_args(copy, argv, 8);
    enum meta r = META_OK;
    const char *c = argc ? argv[0] : "";
    int b;
    if (argc == 0) {
        r = META_OK;
    } else if (strcmp(c, "quit") == 0 || strcmp(c, "q") == 0) {
        r = META_QUIT;
    } else if (strcmp(c, "exit") == 0) {
        *exit_code = argc > 1 ? atoi(argv[1]) : 0;
        r = META_QUIT;
    } else if (strcmp(c, "headers") == 0 || strcmp(c, "header") == 0) {
        if (argc == 2 && parse_bool(argv[1], &b)) {
            sh->headers = b;
            sh->headers_set = 1;
        } else {
            fprintf(stderr, "Usage: .headers on|off\n");
            r = META_ERROR;
        }
    } else if (strcmp(c, "help") == 0) {
        fputs(HELP, stdout);
    } else if (strcmp(c, "mode") == 0) {
        static const char *const names[] = {"list", "csv", "column", "line"};
        if (argc == 1) {
            printf("current output mode: %s\n", names[sh->mode]);
        } else {
            int found = -1;
            for (int i = 0; i < 4; i++)
                if (strcmp(argv[1], names[i]) == 0) found = i;
            if (found < 0) {
                fprintf(stderr, "Error: mode should be one of: column csv line list\n");
                r = META_ERROR;
            } else {
                set_mode(sh, (enum mode)found);
            }
        }
    } else if (strcmp(c, "tables") == 0) {
        r = cmd_tables(sh, argc > 1 ? argv[1] : NULL);
    } else if (strcmp(c, "schema") == 0) {
        r = cmd_schema(sh, argc > 1 ? argv[1] : NULL);
    } else if (strcmp(c, "timer") == 0) {
        if (argc == 2 && parse_bool(argv[1], &b)) {
            sh->timer = b;
        } else {
            fprintf(stderr, "Usage: .timer on|off\n");
            r = META_ERROR;
        }
    } else if (strcmp(c, "bail") == 0) {
        if (argc == 2 && parse_bool(argv[1], &b)) {
            sh->bail = b;
        } else {
            fprintf(stderr, "Usage: .bail on|off\n");
            r = META_ERROR;
        }
    } else if (strcmp(c, "nullvalue") == 0 && argc == 2) {
        sqlite3_snprintf(sizeof sh->nullvalue, sh->nullvalue, "%s", argv[1]);
    } else if (strcmp(c, "separator") == 0 && (argc == 2 || argc == 3)) {
        sqlite3_snprintf(sizeof sh->sep, sh->sep, "%s", argv[1]);
        if (argc == 3) sqlite3_snprintf(sizeof sh->rowsep, sh->rowsep, "%s", argv[2]);
    } else if (strcmp(c, "print") == 0) {
        for (int i = 1; i < argc; i++) printf("%s%s", i > 1 ? " " : "", argv[i]);
        putchar('\n');
    } else if (strcmp(c, "read") == 0) {
        if (argc == 2) {
            r = cmd_read(sh, argv[1], exit_code);
        } else {
            fprintf(stderr, "Usage: .read FILE\n");
            r = META_ERROR;
        }
    } else {
        fprintf(stderr,
                "Error: unknown command or invalid arguments:  \"%s\". Enter \".help\" for help\n",
                c);
        r = META_ERROR;
    }
    sqlite3_free(copy);
    return r;
}

/* ---- input ---- */

/* Where input lines come from: standard input, or a script held in memory (`.read`). */
struct source {
    const char *text; /* NULL: standard input */
    size_t len, pos;
};

/* Copies the next line of an in-memory script; 0 at its end. */
static int next_text_line(struct source *src, char **buf, size_t *cap) {
    if (src->pos >= src->len) return 0;
    const char *start = src->text + src->pos;
    const char *nl = memchr(start, '\n', src->len - src->pos);
    size_t n = nl ? (size_t)(nl - start) : src->len - src->pos;
    if (n + 1 > *cap) {
        char *grown = realloc(*buf, n + 1);
        if (!grown) return 0;
        *buf = grown;
        *cap = n + 1;
    }
    memcpy(*buf, start, n);
    (*buf)[n] = 0;
    src->pos += n + (nl != NULL);
    return 1;
}

/* Reads one line of any length (without its newline) into a growing buffer; NULL at end. */
static char *read_line(struct source *src, char **buf, size_t *cap) {
    size_t len = 0;
    if (src->text) {
        if (!next_text_line(src, buf, cap)) return NULL;
        len = strlen(*buf);
        if (len && (*buf)[len - 1] == '\r') (*buf)[--len] = 0;
        return *buf;
    }
    for (;;) {
        if (*cap - len < 2) {
            size_t ncap = *cap ? *cap * 2 : 256;
            char *grown = realloc(*buf, ncap);
            if (!grown) return NULL;
            *buf = grown;
            *cap = ncap;
        }
        if (!fgets(*buf + len, (int)(*cap - len), stdin)) return len ? *buf : NULL;
        len += strlen(*buf + len);
        if (len && (*buf)[len - 1] == '\n') {
            (*buf)[--len] = 0;
            if (len && (*buf)[len - 1] == '\r') (*buf)[--len] = 0;
            return *buf;
        }
    }
}

static int all_space(const char *z) {
    for (; *z; z++)
        if (!is_space(*z)) return 0;
    return 1;
}

static double now_s(void) { return (double)twz_monotonic_ns() / 1e9; }

/* Runs one complete input buffer; prints an error as the sqlite3 shell does. Returns 1 on error. */
static int run_buffer(struct shell *sh, const char *sql, int startline, int interactive) {
    double t0 = now_s();
    char *err = NULL;
    int rc = run_sql(sh, sql, &err);
    if (sh->timer) {
        double dt = now_s() - t0;
        printf("Run Time: real %.3f user %f sys %f\n", dt, dt, 0.0);
    }
    if (rc == SQLITE_OK && !err) return 0;
    const char *type = "Error", *tail = err ? err : sqlite3_errmsg(sh->db);
    if (err && strncmp(err, "in prepare, ", 12) == 0) {
        type = "Parse error";
        tail = err + 12;
    } else if (err && strncmp(err, "stepping, ", 10) == 0) {
        type = "Runtime error";
        tail = err + 10;
    }
    fflush(stdout);
    if (interactive) fprintf(stderr, "%s: %s\n", type, tail);
    else fprintf(stderr, "%s near line %d: %s\n", type, startline, tail);
    sqlite3_free(err);
    return 1;
}

/* Reads statements and dot-commands from `src` until its end, `.quit`, or (with .bail) an
 * error. Returns the number of errors; `*quit` is set by `.quit`/`.exit`. */
static int process_input(struct shell *sh, struct source *src, int *quit, int *exit_code) {
    char *line = NULL, *sql = NULL;
    size_t line_cap = 0, sql_len = 0, sql_cap = 0;
    int lineno = 0, startline = 0, errors = 0;
    int interactive = sh->interactive && !src->text;
    for (;;) {
        if (interactive) {
            fputs(sql_len ? "   ...> " : "sqlite> ", stdout);
            fflush(stdout);
        }
        char *z = read_line(src, &line, &line_cap);
        if (!z) break;
        lineno++;
        if (sql_len == 0 && all_space(z)) continue;
        if (sql_len == 0 && z[0] == '.') {
            enum meta m = meta_command(sh, z, exit_code);
            if (m == META_QUIT) {
                *quit = 1;
                break;
            }
            if (m == META_ERROR) {
                errors++;
                if (sh->bail) break;
            }
            continue;
        }
        if (sql_len == 0) {
            while (is_space(*z)) z++;
            startline = lineno;
        }
        size_t n = strlen(z);
        if (sql_len + n + 2 > sql_cap) {
            size_t ncap = (sql_len + n + 2) * 2;
            char *grown = realloc(sql, ncap);
            if (!grown) {
                fprintf(stderr, "Error: out of memory\n");
                errors++;
                break;
            }
            sql = grown;
            sql_cap = ncap;
        }
        if (sql_len) sql[sql_len++] = '\n';
        memcpy(sql + sql_len, z, n + 1);
        sql_len += n;
        if (sqlite3_complete(sql)) {
            errors += run_buffer(sh, sql, startline, interactive);
            sql_len = 0;
            if (errors && sh->bail) break;
        } else if (all_space(sql)) {
            sql_len = 0;
        }
    }
    if (sql_len && !all_space(sql) && !*quit && !(errors && sh->bail))
        errors += run_buffer(sh, sql, startline, interactive);
    if (interactive && !*quit) putchar('\n');
    free(line);
    free(sql);
    return errors;
}

/* .read NAME: runs the script in the byte-stream object NAME. Nesting stops at 32 levels (a
 * script that reads itself would otherwise run the guest out of stack). */
static enum meta cmd_read(struct shell *sh, const char *name, int *exit_code) {
    static int depth;
    if (depth >= 32) {
        fprintf(stderr, "Error: .read nested too deeply: \"%s\"\n", name);
        return META_ERROR;
    }
    twz_obj *o = NULL;
    int rc = twz_obj_open(name, &o);
    const char *text = rc == 0 ? twz_obj_base(o) : NULL;
    int64_t len = rc == 0 ? twz_obj_size(o) : -1;
    if (!text || len < 0) {
        if (o) twz_obj_close(o);
        fprintf(stderr, "Error: cannot open \"%s\"\n", name);
        return META_ERROR;
    }
    struct source src = {text, (size_t)len, 0};
    int quit = 0;
    depth++;
    int errors = process_input(sh, &src, &quit, exit_code);
    depth--;
    twz_obj_close(o);
    return errors ? META_ERROR : META_OK;
}

/* One-shot mode: each argument is SQL or a dot-command. */
static int run_args(struct shell *sh, int n, char **args) {
    for (int i = 0; i < n; i++) {
        if (args[i][0] == '.') {
            int code = 0;
            enum meta m = meta_command(sh, args[i], &code);
            if (m == META_ERROR) return 1;
            if (m == META_QUIT) return code;
            continue;
        }
        char *err = NULL;
        int rc = run_sql(sh, args[i], &err);
        if (err || rc) {
            fflush(stdout);
            if (err) fprintf(stderr, "Error: %s\n", err);
            else fprintf(stderr, "Error: unable to process SQL: %s\n", args[i]);
            sqlite3_free(err);
            return rc ? rc : 1;
        }
    }
    return 0;
}

/* memsys5's region: all of the heap still free but 16 MiB kept for the shell's own buffers (at
 * least 8 MiB, at most 1 GiB). A bigger `twz-vmm run --mem` gives SQLite more. */
static int init_sqlite(void) {
    const size_t keep = 16u << 20, least = 8u << 20, most = 1u << 30;
    size_t room = twz_heap_untouched();
    size_t size = room > keep + least ? room - keep : least;
    if (size > most) size = most;
    void *heap = twz_heap_carve(size);
    if (!heap) {
        fprintf(stderr, "Error: cannot reserve %zu bytes for SQLite\n", size);
        return 0;
    }
    int rc = sqlite3_config(SQLITE_CONFIG_HEAP, heap, (int)(size > 0x7fffffff ? 0x7fffffff : size), 64);
    if (rc == SQLITE_OK) rc = sqlite3_initialize();
    if (rc != SQLITE_OK) {
        fprintf(stderr, "Error: cannot initialize SQLite: %s\n", sqlite3_errstr(rc));
        return 0;
    }
    return 1;
}

int main(int argc, char **argv) {
    struct shell sh;
    memset(&sh, 0, sizeof sh);
    set_mode(&sh, MODE_LIST);
    const char *dbname = NULL;
    int i = 1;
    sh.interactive = twz_stdin_is_tty();
    for (; i < argc && argv[i][0] == '-' && argv[i][1]; i++) {
        const char *o = argv[i] + (argv[i][1] == '-' ? 2 : 1);
        if (strcmp(o, "header") == 0) sh.headers = sh.headers_set = 1;
        else if (strcmp(o, "noheader") == 0) sh.headers = 0, sh.headers_set = 1;
        else if (strcmp(o, "list") == 0) set_mode(&sh, MODE_LIST);
        else if (strcmp(o, "csv") == 0) set_mode(&sh, MODE_CSV);
        else if (strcmp(o, "column") == 0) set_mode(&sh, MODE_COLUMN);
        else if (strcmp(o, "line") == 0) set_mode(&sh, MODE_LINE);
        else if (strcmp(o, "bail") == 0) sh.bail = 1;
        else if (strcmp(o, "interactive") == 0) sh.interactive = 1;
        else if (strcmp(o, "batch") == 0) sh.interactive = 0;
        else if (strcmp(o, "version") == 0) {
            printf("%s %s\n", sqlite3_libversion(), sqlite3_sourceid());
            return 0;
        } else {
            fprintf(stderr, "%s: Error: unknown option: %s\nUse -help for a list of options.\n",
                    argv[0], argv[i]);
            return 1;
        }
    }
    if (i < argc) dbname = argv[i++];
    if (!init_sqlite()) return 1;
    if (!dbname) dbname = ":memory:";
    int rc = sqlite3_open_v2(dbname, &sh.db, SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE, NULL);
    if (rc != SQLITE_OK) {
        fprintf(stderr, "Error: unable to open database \"%s\": %s\n", dbname,
                sh.db ? sqlite3_errmsg(sh.db) : sqlite3_errstr(rc));
        sqlite3_close(sh.db);
        return 1;
    }
    if (strcmp(dbname, ":memory:") != 0 && dbname[0] && !twz_vfs_persistent())
        fprintf(stderr, "Note: \"%s\" lives in guest memory (VFS %s) and is gone after this run.\n",
                dbname, twz_vfs_name());
    int status;
    if (i < argc) {
        status = run_args(&sh, argc - i, argv + i);
    } else {
        if (sh.interactive) {
            printf("SQLite version %s %.19s\nEnter \".help\" for usage hints.\n",
                   sqlite3_libversion(), sqlite3_sourceid());
            if (strcmp(dbname, ":memory:") == 0)
                printf("Connected to a transient in-memory database.\n");
        }
        struct source in = {NULL, 0, 0};
        int quit = 0, code = 0;
        int errors = process_input(&sh, &in, &quit, &code);
        status = code ? code : errors ? 1 : 0;
    }
    sqlite3_close(sh.db);
    return status;
}
