#include "crypto/masterkey.h"

#include "util/codec.h"

#include <errno.h>
#include <fcntl.h>
#include <openssl/crypto.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

static int create_key(const char *path, unsigned char key[MASTER_KEY_LEN], char *err, size_t errlen)
{
    int fd = -1, rc = -1;
    char *hex = NULL;
    if (random_bytes(key, MASTER_KEY_LEN) != 0 || !(hex = hex_encode(key, MASTER_KEY_LEN)))
        goto out;
    fd = open(path, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0600);
    if (fd < 0) {
        snprintf(err, errlen, "cannot create master key %s: %s", path, strerror(errno));
        goto out;
    }
    size_t n = strlen(hex);
    if (write(fd, hex, n) != (ssize_t)n || write(fd, "\n", 1) != 1 || fsync(fd) != 0) {
        snprintf(err, errlen, "cannot write master key %s: %s", path, strerror(errno));
        goto out;
    }
    rc = 0;
out:
    if (fd >= 0)
        close(fd);
    if (hex) {
        OPENSSL_cleanse(hex, strlen(hex));
        free(hex);
    }
    return rc;
}

int masterkey_load_or_create(const char *path, unsigned char key[MASTER_KEY_LEN], char *err, size_t errlen)
{
    struct stat st;
    char text[80];
    unsigned char *raw = NULL;
    size_t rawlen = 0;
    int fd = -1, rc = -1;
    if (stat(path, &st) != 0) {
        if (errno == ENOENT)
            return create_key(path, key, err, errlen);
        snprintf(err, errlen, "cannot stat master key %s: %s", path, strerror(errno));
        return -1;
    }
    if (st.st_mode & 077) {
        snprintf(err, errlen, "master key %s must have mode 0600 (found %03o)", path, (unsigned)(st.st_mode & 0777));
        return -1;
    }
    if ((fd = open(path, O_RDONLY | O_CLOEXEC)) < 0) {
        snprintf(err, errlen, "cannot open master key %s: %s", path, strerror(errno));
        return -1;
    }
    ssize_t n = read(fd, text, sizeof text - 1);
    if (n < 64) {
        snprintf(err, errlen, "master key %s is truncated", path);
        goto out;
    }
    text[64] = 0;
    if (hex_decode(text, &raw, &rawlen) != 0 || rawlen != MASTER_KEY_LEN) {
        snprintf(err, errlen, "master key %s is not 64 hex characters", path);
        goto out;
    }
    memcpy(key, raw, MASTER_KEY_LEN);
    rc = 0;
out:
    OPENSSL_cleanse(text, sizeof text);
    if (raw) {
        OPENSSL_cleanse(raw, rawlen);
        free(raw);
    }
    close(fd);
    return rc;
}
