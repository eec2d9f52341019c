/* util/log: with the background writer, access lines from many threads all
 * arrive, whole, in each thread's order, and a message (log_msg) comes after
 * every access line its thread logged before it, and is on stderr before
 * log_msg returns. Without the writer every line is written at once. */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include "util/log.h"

#include <jansson.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

enum { THREADS = 4, LINES = 5000, MSG_EVERY = 500 };

static char path[64];
static int saved_stderr = -1;

static void redirect(void)
{
    snprintf(path, sizeof path, "/tmp/pkiaas-test-log.XXXXXX");
    int fd = mkstemp(path);
    assert_true(fd >= 0);
    saved_stderr = dup(STDERR_FILENO);
    assert_true(dup2(fd, STDERR_FILENO) >= 0);
    close(fd);
}

static char *restore_and_read(size_t *len)
{
    fflush(stderr);
    dup2(saved_stderr, STDERR_FILENO);
    close(saved_stderr);
    FILE *f = fopen(path, "rb");
    assert_non_null(f);
    fseek(f, 0, SEEK_END);
    long n = ftell(f);
    fseek(f, 0, SEEK_SET);
    char *buf = malloc((size_t)n + 1);
    assert_non_null(buf);
    assert_int_equal(fread(buf, 1, (size_t)n, f), (size_t)n);
    buf[n] = 0;
    fclose(f);
    unlink(path);
    *len = (size_t)n;
    return buf;
}

static off_t file_size(void)
{
    struct stat st;
    return stat(path, &st) == 0 ? st.st_size : -1;
}

static void *worker(void *arg)
{
    int t = (int)(intptr_t)arg;
    char p[64];
    for (int i = 0; i < LINES; i++) {
        snprintf(p, sizeof p, "/t%d/%d", t, i);
        log_request("GET", p, 200, 1.5, "demo");
        if (i % MSG_EVERY == MSG_EVERY - 1) {
            off_t before = file_size();
            log_msg(LOG_WARN, "t%d after %d", t, i);
            /* written before the call returned */
            if (file_size() <= before)
                return (void *)1;
        }
    }
    return NULL;
}

static void test_writer_order(void **state)
{
    (void)state;
    redirect();
    assert_int_equal(log_writer_start(), 0);
    pthread_t th[THREADS];
    for (int t = 0; t < THREADS; t++)
        assert_int_equal(pthread_create(&th[t], NULL, worker, (void *)(intptr_t)t), 0);
    for (int t = 0; t < THREADS; t++) {
        void *r = NULL;
        pthread_join(th[t], &r);
        assert_null(r);
    }
    log_writer_stop();
    size_t len = 0;
    char *text = restore_and_read(&len);

    int next[THREADS] = {0}, msgs = 0, lines = 0;
    for (char *save = NULL, *l = strtok_r(text, "\n", &save); l; l = strtok_r(NULL, "\n", &save)) {
        json_error_t je;
        json_t *o = json_loads(l, 0, &je);
        assert_non_null(o); /* every line whole */
        lines++;
        const char *pth = json_string_value(json_object_get(o, "path"));
        const char *msg = json_string_value(json_object_get(o, "msg"));
        int t = -1, i = -1;
        if (pth) {
            assert_int_equal(sscanf(pth, "/t%d/%d", &t, &i), 2);
            assert_int_equal(i, next[t]); /* each thread's order */
            next[t]++;
        } else {
            assert_non_null(msg);
            assert_int_equal(sscanf(msg, "t%d after %d", &t, &i), 2);
            assert_int_equal(next[t], i + 1); /* after the access lines before it, before the ones after */
            msgs++;
        }
        json_decref(o);
    }
    for (int t = 0; t < THREADS; t++)
        assert_int_equal(next[t], LINES);
    assert_int_equal(msgs, THREADS * (LINES / MSG_EVERY));
    assert_int_equal(lines, THREADS * LINES + msgs);
    free(text);
}

static void test_without_writer(void **state)
{
    (void)state;
    redirect();
    log_request("POST", "/x", 201, 2.0, NULL);
    off_t n = file_size(); /* already written */
    size_t len = 0;
    char *text = restore_and_read(&len);
    assert_true(n > 0);
    assert_non_null(strstr(text, "\"path\":\"/x\""));
    assert_non_null(strstr(text, "\"partition\":null"));
    free(text);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_writer_order),
        cmocka_unit_test(test_without_writer),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
