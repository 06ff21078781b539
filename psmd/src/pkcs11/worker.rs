//! One thread per loaded module that makes every call into it, with a
//! timeout on each call. A PKCS#11 call cannot be cancelled, so a module
//! that stops answering keeps its thread; the callers do not wait for it:
//! each gives up after its timeout, and while a call has been running for
//! longer than that the module counts as hung and new calls fail at once.
//! The module is usable again as soon as the stuck call returns.

use std::sync::mpsc::{Receiver, RecvTimeoutError, Sender, channel, sync_channel};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use psm::{Code, Error};

type Job<S> = Box<dyn FnOnce(&mut S) + Send>;

/// The call running on the module's thread, if any.
#[derive(Clone, Copy)]
struct Running {
    what: &'static str,
    since: Instant,
}

pub(super) struct Worker<S> {
    /// The module named in errors.
    name: String,
    tx: Mutex<Option<Sender<Job<S>>>>,
    running: Arc<Mutex<Option<Running>>>,
    /// Receives once the thread has dropped its state (finalized the module).
    stopped: Mutex<Receiver<()>>,
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}

fn timed_out(name: &str, what: &str, timeout: Duration) -> Error {
    Error::new(
        Code::PSM_ERR_TIMEOUT,
        format!(
            "PKCS#11 module {name} did not return from {what} within {}s; it is treated as hung \
             (its calls fail at once) until that call returns",
            timeout.as_secs_f32()
        ),
    )
}

impl<S: 'static> Worker<S> {
    /// Starts the thread, which builds its state with `init` (loading and
    /// initializing the module, under the same timeout as any call) and
    /// then runs calls until the worker is shut down.
    pub fn start(
        name: String,
        timeout: Duration,
        init: impl FnOnce() -> Result<S, Error> + Send + 'static,
    ) -> Result<Worker<S>, Error> {
        let (tx, rx) = channel::<Job<S>>();
        let (stopped_tx, stopped_rx) = sync_channel::<()>(1);
        let (init_tx, init_rx) = sync_channel::<Result<(), Error>>(1);
        let running = Arc::new(Mutex::new(Some(Running { what: "C_Initialize", since: Instant::now() })));
        let thread_running = running.clone();
        std::thread::Builder::new()
            .name(format!("pkcs11-{}", thread_name(&name)))
            .spawn(move || {
                let state =
                    std::panic::catch_unwind(std::panic::AssertUnwindSafe(init)).unwrap_or_else(|_| {
                        Err(Error::new(Code::PSM_ERR_INTERNAL, "PKCS#11 module initialization panicked"))
                    });
                *lock(&thread_running) = None;
                let mut state = match state {
                    Ok(s) => {
                        let _ = init_tx.send(Ok(()));
                        s
                    }
                    Err(e) => {
                        let _ = init_tx.send(Err(e));
                        return;
                    }
                };
                while let Some(job) = next_job(&rx) {
                    job(&mut state);
                }
                drop(state);
                let _ = stopped_tx.send(());
            })
            .map_err(|e| Error::new(Code::PSM_ERR_INTERNAL, format!("cannot start a PKCS#11 thread: {e}")))?;
        match init_rx.recv_timeout(timeout) {
            Ok(Ok(())) => {}
            Ok(Err(e)) => return Err(e),
            // The thread finishes initializing on its own; with the sender
            // dropped it then finalizes the module and exits.
            Err(RecvTimeoutError::Timeout) => return Err(timed_out(&name, "C_Initialize", timeout)),
            Err(RecvTimeoutError::Disconnected) => {
                return Err(Error::new(
                    Code::PSM_ERR_INTERNAL,
                    format!("PKCS#11 module {name}: thread died"),
                ));
            }
        }
        Ok(Worker { name, tx: Mutex::new(Some(tx)), running, stopped: Mutex::new(stopped_rx) })
    }

    /// If a call has been running for longer than `timeout`: which, and
    /// for how long.
    pub fn hung(&self, timeout: Duration) -> Option<(&'static str, Duration)> {
        let r = (*lock(&self.running))?;
        let elapsed = r.since.elapsed();
        (elapsed > timeout).then_some((r.what, elapsed))
    }

    /// Runs `f` on the module's thread and waits at most `timeout` for it.
    /// `what` names the PKCS#11 function the caller is waiting on.
    pub fn call<T: Send + 'static>(
        &self,
        what: &'static str,
        timeout: Duration,
        f: impl FnOnce(&mut S) -> Result<T, Error> + Send + 'static,
    ) -> Result<T, Error> {
        if let Some((stuck, elapsed)) = self.hung(timeout) {
            return Err(self.hung_error(stuck, elapsed, what));
        }
        let deadline = Instant::now() + timeout;
        let (reply_tx, reply_rx) = sync_channel::<Result<T, Error>>(1);
        let running = self.running.clone();
        let job: Job<S> = Box::new(move |state: &mut S| {
            // A call that waited in the queue past its caller's deadline
            // is not made: nobody wants its result any more, and it may be
            // a login or a signature the user no longer expects.
            if Instant::now() >= deadline {
                return;
            }
            *lock(&running) = Some(Running { what, since: Instant::now() });
            let result =
                std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| f(state))).unwrap_or_else(|_| {
                    Err(Error::new(Code::PSM_ERR_INTERNAL, format!("PKCS#11 call {what} panicked")))
                });
            *lock(&running) = None;
            let _ = reply_tx.send(result);
        });
        let sent = lock(&self.tx).as_ref().is_some_and(|tx| tx.send(job).is_ok());
        if !sent {
            return Err(Error::new(
                Code::PSM_ERR_INTERNAL,
                format!("PKCS#11 module {} has been unloaded", self.name),
            ));
        }
        match wait_reply(&reply_rx, timeout) {
            Ok(r) => r,
            Err(RecvTimeoutError::Timeout) => Err(timed_out(&self.name, what, timeout)),
            // The job was skipped (queued past its deadline) or the thread
            // is gone.
            Err(RecvTimeoutError::Disconnected) => Err(timed_out(&self.name, what, timeout)),
        }
    }

    fn hung_error(&self, stuck: &str, elapsed: Duration, what: &str) -> Error {
        Error::new(
            Code::PSM_ERR_TIMEOUT,
            format!(
                "PKCS#11 module {} is hung: {stuck} has not returned for {}s; not calling {what}",
                self.name,
                elapsed.as_secs()
            ),
        )
    }

    /// Stops taking calls; waits up to `timeout` for the thread to finish
    /// its current call and drop its state (finalizing the module), so a
    /// module loaded again right after starts from a clean state. A hung
    /// thread is left behind.
    pub fn shutdown(&self, timeout: Duration) {
        lock(&self.tx).take();
        let _ = lock(&self.stopped).recv_timeout(timeout);
    }
}

impl<S> Drop for Worker<S> {
    fn drop(&mut self) {
        lock(&self.tx).take();
    }
}

/// How long a module thread keeps looking for its next call, yielding the
/// CPU in between, before it sleeps. Calls come in bursts (a handshake's
/// signature, a mail client signing a batch); waking a sleeping thread on
/// another CPU costs tens of microseconds on virtual machines, more than a
/// token's signature, and yielding keeps the look from stealing the CPU
/// from any thread that has work.
const LINGER: Duration = Duration::from_micros(200);
/// How long a caller looks for its reply the same way before it sleeps:
/// about what a fast token's call takes.
const REPLY_LINGER: Duration = Duration::from_micros(100);

/// The module thread's next call, or None once the worker is shut down.
fn next_job<S>(rx: &Receiver<Job<S>>) -> Option<Job<S>> {
    let until = Instant::now() + LINGER;
    while Instant::now() < until {
        match rx.try_recv() {
            Ok(job) => return Some(job),
            Err(std::sync::mpsc::TryRecvError::Disconnected) => return None,
            Err(std::sync::mpsc::TryRecvError::Empty) => std::thread::yield_now(),
        }
    }
    rx.recv().ok()
}

/// A call's reply, waited for at most `timeout`.
fn wait_reply<T>(rx: &Receiver<T>, timeout: Duration) -> Result<T, RecvTimeoutError> {
    let start = Instant::now();
    while start.elapsed() < REPLY_LINGER.min(timeout) {
        match rx.try_recv() {
            Ok(r) => return Ok(r),
            Err(std::sync::mpsc::TryRecvError::Disconnected) => return Err(RecvTimeoutError::Disconnected),
            Err(std::sync::mpsc::TryRecvError::Empty) => std::thread::yield_now(),
        }
    }
    rx.recv_timeout(timeout.saturating_sub(start.elapsed()))
}

/// Thread names are at most 15 bytes on Linux; the file name says most.
fn thread_name(module: &str) -> String {
    let file = module.rsplit('/').next().unwrap_or(module);
    file.chars().take(8).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn worker(timeout: Duration) -> Worker<u32> {
        Worker::start("/test/libslow.so".into(), timeout, || Ok(0u32)).unwrap()
    }

    #[test]
    fn calls_run_in_order_on_the_module_thread() {
        let w = worker(Duration::from_secs(5));
        let t = Duration::from_secs(5);
        w.call("C_A", t, |s| {
            *s += 1;
            Ok(())
        })
        .unwrap();
        assert_eq!(w.call("C_B", t, |s| Ok(*s)).unwrap(), 1);
        let name = w.call("C_C", t, |_| Ok(std::thread::current().name().map(str::to_owned))).unwrap();
        assert_eq!(name.as_deref(), Some("pkcs11-libslow."));
    }

    #[test]
    fn a_slow_call_times_out_and_the_module_fails_fast_until_it_returns() {
        let w = worker(Duration::from_secs(5));
        let t = Duration::from_millis(200);
        let started = Instant::now();
        let e = w
            .call("C_Sign", t, |_| {
                std::thread::sleep(Duration::from_millis(1500));
                Ok(())
            })
            .unwrap_err();
        assert!(started.elapsed() < Duration::from_secs(1));
        assert_eq!(e.code, Code::PSM_ERR_TIMEOUT);
        assert!(e.message.contains("/test/libslow.so") && e.message.contains("C_Sign"), "{}", e.message);
        std::thread::sleep(Duration::from_millis(100));
        let started = Instant::now();
        let e = w.call("C_GetSlotList", t, |_| Ok(())).unwrap_err();
        assert!(started.elapsed() < Duration::from_millis(50), "a hung module must fail fast");
        assert!(e.message.contains("is hung: C_Sign"), "{}", e.message);
        assert!(w.hung(t).is_some());
        std::thread::sleep(Duration::from_millis(1500));
        assert!(w.hung(t).is_none());
        w.call("C_GetSlotList", t, |_| Ok(())).unwrap();
    }

    #[test]
    fn an_initialization_that_hangs_times_out() {
        let started = Instant::now();
        let e = Worker::<u32>::start("/test/libstuck.so".into(), Duration::from_millis(100), || {
            std::thread::sleep(Duration::from_secs(2));
            Ok(0)
        })
        .err()
        .unwrap();
        assert!(started.elapsed() < Duration::from_secs(1));
        assert!(e.message.contains("C_Initialize"), "{}", e.message);
    }

    #[test]
    fn a_panicking_call_is_an_error_and_the_thread_lives_on() {
        let w = worker(Duration::from_secs(5));
        let t = Duration::from_secs(5);
        let e = w.call::<()>("C_Boom", t, |_| panic!("boom")).unwrap_err();
        assert_eq!(e.code, Code::PSM_ERR_INTERNAL);
        assert_eq!(w.call("C_B", t, |s| Ok(*s)).unwrap(), 0);
    }
}
