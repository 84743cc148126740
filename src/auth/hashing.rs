//! Where password hashes are computed: on a thread of their own per login, at
//! the lowest CPU priority there is (Linux `SCHED_IDLE`).
//!
//! argon2id takes tens of milliseconds of CPU on purpose. On tokio's blocking
//! pool it ran at the proxy workers' priority, and on two cores one password
//! login a second put stalls of 100-180 ms into the proxied requests of the
//! soak (bench/results/soak.md). At idle priority the scheduler gives a hash
//! only the CPU time no worker wants, and preempts it as soon as one wakes.
//! The price, chosen on purpose: while proxied requests keep every core busy,
//! logins wait for them (the queue in front is bounded, see `password.rs`).
//!
//! A thread per hash rather than a pool: the hashing semaphore bounds them, and
//! starting a thread costs microseconds against the hash's milliseconds.

/// Run `job` on a new idle-priority thread; `None` if no thread could be
/// started or the job panicked.
pub(super) async fn off_the_workers<R: Send + 'static>(
    job: impl FnOnce() -> R + Send + 'static,
) -> Option<R> {
    let (done, result) = tokio::sync::oneshot::channel();
    let started = std::thread::Builder::new()
        .name("sg-hash".into())
        .spawn(move || {
            lower_priority();
            let _ = done.send(job());
        });
    if let Err(e) = started {
        tracing::warn!(target: "auth", error = %e, "no thread to hash a password on");
        return None;
    }
    result.await.ok()
}

/// `SCHED_IDLE` for the calling thread. Failing is no reason to refuse the
/// login: the hash then runs at normal priority, as it did before.
fn lower_priority() {
    #[cfg(target_os = "linux")]
    {
        use thread_priority::unix::{
            set_thread_priority_and_policy, thread_native_id, NormalThreadSchedulePolicy,
            ThreadSchedulePolicy,
        };
        let idle = ThreadSchedulePolicy::Normal(NormalThreadSchedulePolicy::Idle);
        let min = thread_priority::ThreadPriority::Min;
        if let Err(e) = set_thread_priority_and_policy(thread_native_id(), min, idle) {
            tracing::debug!(target: "auth", error = ?e, "hashing at normal priority");
        }
    }
}

#[cfg(all(test, target_os = "linux"))]
mod tests {
    use super::*;

    /// The scheduling policy of the calling thread (`/proc/thread-self/stat`,
    /// field 41; 5 is `SCHED_IDLE`, 0 `SCHED_OTHER`).
    fn policy() -> u32 {
        let stat = std::fs::read_to_string("/proc/thread-self/stat").unwrap();
        // Field 2 (the name) is in parentheses and may hold spaces.
        let after_name = &stat[stat.rfind(')').unwrap() + 2..];
        after_name.split(' ').nth(41 - 3).unwrap().parse().unwrap()
    }

    #[tokio::test]
    async fn hashes_run_at_idle_priority_and_the_caller_does_not() {
        assert_eq!(off_the_workers(policy).await, Some(5));
        assert_eq!(policy(), 0, "the worker that waited is untouched");
    }

    #[tokio::test]
    async fn a_panicking_job_is_none() {
        assert_eq!(
            off_the_workers(|| -> u32 { panic!("on purpose") }).await,
            None
        );
    }
}
