/* jsonw: compact serialisation of jansson values, for response bodies.
 *
 * Promises: jsonw_compact(j) returns exactly the bytes json_dumps(j,
 * JSON_COMPACT) returns (keys in insertion order, the same escapes: \" \\
 * \b \f \n \r \t and \u00XX for other control characters, nothing else
 * escaped), malloc'd and NUL-terminated, or NULL when it cannot (out of
 * memory, a string that is not valid UTF-8, a real number, nesting deeper
 * than jansson allows): the caller then uses json_dumps, which gives the
 * same answer or fails the same way. It exists because jansson's dumper
 * escapes character by character through a callback, which made up ~9% of
 * the instructions of a certificate issuance (three PEM blocks per reply).
 * The data model and parsing stay jansson's. */
#ifndef PKIAAS_UTIL_JSONW_H
#define PKIAAS_UTIL_JSONW_H

#include <jansson.h>
#include <stddef.h>

char *jsonw_compact(const json_t *j, size_t *len);

#endif
