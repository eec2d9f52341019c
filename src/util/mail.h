/* mail: outbound e-mail through a configured SMTP relay (libcurl), sent on
 * a background thread so request handlers never wait for a relay. */
#ifndef PKIAAS_UTIL_MAIL_H
#define PKIAAS_UTIL_MAIL_H

struct mail_relay {
    const char *url;      /* smtp://host:25, smtp://host:587 (STARTTLS when offered) or smtps://host:465 */
    const char *from;     /* envelope and header sender */
    const char *username; /* optional */
    const char *password; /* optional */
};

/* Queues one plain-text message; 0 when handed to the sender thread.
 * Delivery failures are logged (never the body, which may hold a link). */
int mail_send_async(const struct mail_relay *relay, const char *to, const char *subject, const char *body);

#endif
