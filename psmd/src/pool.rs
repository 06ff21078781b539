//! Worker pool for requests that may take more than about a millisecond.
//! Results come back to the event loop through a queue and the mio `Waker`,
//! so a slow request never holds up other applications.

use psm::proto::Reply;
use std::sync::mpsc::{Receiver, Sender, channel};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;

pub type Work = Box<dyn FnOnce() -> Result<Reply, psm::Error> + Send>;

/// Where a result goes: a connection (slab token), checked against the
/// session id so a reused token never receives another session's reply.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ReplyTo {
    pub token: usize,
    pub session_id: u64,
    pub request_id: u64,
}

pub struct Done {
    pub to: ReplyTo,
    pub result: Result<Reply, psm::Error>,
}

struct Job {
    to: ReplyTo,
    work: Work,
}

pub struct Pool {
    tx: Option<Sender<Job>>,
    done: Arc<Mutex<Vec<Done>>>,
    threads: Vec<JoinHandle<()>>,
}

impl Pool {
    /// Starts `n` workers; `wake` is called after each result is queued.
    pub fn new(n: usize, wake: Arc<dyn Fn() + Send + Sync>) -> std::io::Result<Pool> {
        let (tx, rx) = channel::<Job>();
        let rx = Arc::new(Mutex::new(rx));
        let done = Arc::new(Mutex::new(Vec::new()));
        let mut threads = Vec::with_capacity(n);
        for i in 0..n {
            let rx: Arc<Mutex<Receiver<Job>>> = rx.clone();
            let done = done.clone();
            let wake = wake.clone();
            threads.push(std::thread::Builder::new().name(format!("psmd-worker-{i}")).spawn(move || {
                loop {
                    let job = match rx.lock().unwrap_or_else(|p| p.into_inner()).recv() {
                        Ok(job) => job,
                        Err(_) => return, // pool dropped
                    };
                    let result = std::panic::catch_unwind(std::panic::AssertUnwindSafe(job.work))
                        .unwrap_or_else(|_| {
                            Err(psm::Error::new(psm::Code::PSM_ERR_INTERNAL, "request handler panicked"))
                        });
                    done.lock().unwrap_or_else(|p| p.into_inner()).push(Done { to: job.to, result });
                    wake();
                }
            })?);
        }
        Ok(Pool { tx: Some(tx), done, threads })
    }

    pub fn submit(&self, to: ReplyTo, work: Work) {
        if let Some(tx) = &self.tx {
            // Send fails only once every worker has exited, which happens
            // only in Drop; the request then simply gets no reply.
            let _ = tx.send(Job { to, work });
        }
    }

    /// Results finished since the last call.
    pub fn take_done(&self) -> Vec<Done> {
        std::mem::take(&mut *self.done.lock().unwrap_or_else(|p| p.into_inner()))
    }
}

impl Drop for Pool {
    fn drop(&mut self) {
        self.tx = None;
        for t in self.threads.drain(..) {
            let _ = t.join();
        }
    }
}
