/* log: one JSON object per line on stderr. Never pass secrets or key
 * material to these functions: messages are written verbatim (JSON-escaped). */
#ifndef PKIAAS_UTIL_LOG_H
#define PKIAAS_UTIL_LOG_H

enum log_level { LOG_DEBUG, LOG_INFO, LOG_WARN, LOG_ERROR };

void log_set_level(enum log_level lvl);
void log_msg(enum log_level lvl, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
void log_request(const char *method, const char *path, int status, double ms, const char *partition);
/* The daemon's access lines go through a background writer between these
 * two calls (after the signer process is forked; stop flushes everything).
 * Messages are always written before log_msg returns. */
int log_writer_start(void);
void log_writer_stop(void);
/* Logs and clears the OpenSSL error queue with a context message. */
void log_openssl(const char *context);

#define log_info(...) log_msg(LOG_INFO, __VA_ARGS__)
#define log_warn(...) log_msg(LOG_WARN, __VA_ARGS__)
#define log_error(...) log_msg(LOG_ERROR, __VA_ARGS__)
#define log_debug(...) log_msg(LOG_DEBUG, __VA_ARGS__)

#endif
