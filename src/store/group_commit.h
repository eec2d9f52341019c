#ifndef PKIAAS_STORE_GROUP_COMMIT_H
#define PKIAAS_STORE_GROUP_COMMIT_H

/* Group commit of certificate inserts, independent of the backend.
 *
 * Concurrent callers of group_commit_submit() queue their job; one of them
 * becomes the leader, takes everything queued so far as one batch and hands
 * it to the backend's `run` callback (which commits the batch, typically in
 * one transaction, and sets every job's rc). The leader then wakes each
 * job's owner (through the job's own state word, outside the queue lock)
 * and hands the lead to the first job queued meanwhile (under the queue
 * lock, so nobody else can take that job into a batch while it is being
 * woken).
 *
 * Promises:
 *  - at most one batch of a given struct group_commit runs at a time;
 *  - every submitted job is in exactly one batch, in submission order
 *    within the batch, and batches follow submission order;
 *  - group_commit_submit() returns only after the batch holding its job was
 *    run, and returns that job's rc (as left by `run`; STORE_EIO if `run`
 *    did not set it);
 *  - `run` is called by the leader's thread with no lock of this module
 *    held. It must set rc of every job and must not keep pointers to jobs
 *    after it returns (their owners return once woken). */

#include "store/store.h"

#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>

/* A certificate insert waiting for the group commit. */
struct gc_job {
    struct cert_rec *c;
    bool count_quota;
    const struct audit_rec *a;
    int rc;
    struct gc_job *next; /* next job of the same batch */
    /* GC_WAIT until the leader sets GC_DONE (rc is final) or GC_LEAD (lead
     * the next batch). Its owner sleeps on this word itself (a futex), so a
     * wake costs the leader one system call and the owner nothing more:
     * with a mutex and condition per job, a woken owner often blocked again
     * on the mutex the leader still held. */
    _Atomic int state;
};

/* Commits `batch` (a list through ->next) and sets each job's rc. */
typedef void (*group_commit_run_fn)(void *ctx, struct gc_job *batch);

struct group_commit {
    pthread_mutex_t mu; /* the queue lock */
    struct gc_job *head, **tail;
    bool leader;
    group_commit_run_fn run;
    void *ctx;
};

/* 0, or -1. On failure *gc is left as it was: a zeroed struct (calloc) may
 * then still be passed to group_commit_destroy, which does nothing. */
int group_commit_init(struct group_commit *gc, group_commit_run_fn run, void *ctx);
/* No job may be pending. Does nothing for a zeroed, never initialised gc. */
void group_commit_destroy(struct group_commit *gc);
/* Queues the insert, waits until its batch is committed (leading a batch
 * when it is this caller's turn) and returns the job's result. */
int group_commit_submit(struct group_commit *gc, struct cert_rec *c, bool count_quota, const struct audit_rec *a);

#endif
