//! Questions for the user, asked through the application's prompt handler
//! (the `Prompt` event). The thread that needs the answer (a handshake
//! thread) blocks in [`Prompts::ask`]; the event loop delivers the event
//! and, when the application answers, [`Prompts::answer`] wakes it.

use crate::mailbox::{LoopMsg, Mailbox};
use crate::pool::ReplyTo;
use psm::proto::{Event, Prompt, PromptKind, Secret};
use psm::{Code, Error};
use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::mpsc::{RecvTimeoutError, SyncSender, sync_channel};
use std::sync::{Arc, Mutex};
use std::time::Duration;

/// How long a question waits for its answer.
pub const PROMPT_TIMEOUT: Duration = Duration::from_secs(5 * 60);
/// Questions one session may have open at once.
pub const MAX_PROMPTS_PER_SESSION: usize = 16;

struct Pending {
    session_id: u64,
    choices: Vec<String>,
    tx: SyncSender<Option<Secret>>,
}

pub struct Prompts {
    pending: Mutex<HashMap<u64, Pending>>,
    next: AtomicU64,
    mailbox: Arc<Mailbox>,
    timeout: Duration,
}

impl Prompts {
    pub fn new(mailbox: Arc<Mailbox>) -> Prompts {
        Prompts {
            pending: Mutex::new(HashMap::new()),
            next: AtomicU64::new(1),
            mailbox,
            timeout: PROMPT_TIMEOUT,
        }
    }

    /// Asks the application at `to` and waits for the answer: one of
    /// `choices` (any text when there are none). A cancel is
    /// `PSM_ERR_USER_CANCELLED`, silence `PSM_ERR_DIALOG_TIMEOUT`.
    pub fn ask(
        &self,
        to: ReplyTo,
        kind: PromptKind,
        message: String,
        details_json: String,
        choices: Vec<String>,
    ) -> Result<Secret, Error> {
        let id = self.next.fetch_add(1, Ordering::Relaxed);
        let (tx, rx) = sync_channel(1);
        {
            let mut pending = self.pending.lock().unwrap_or_else(|p| p.into_inner());
            if pending.values().filter(|p| p.session_id == to.session_id).count() >= MAX_PROMPTS_PER_SESSION {
                return Err(Error::new(
                    Code::PSM_ERR_BUSY,
                    format!("{MAX_PROMPTS_PER_SESSION} questions already wait for this application's answer"),
                ));
            }
            pending.insert(id, Pending { session_id: to.session_id, choices: choices.clone(), tx });
        }
        let event = Event::Prompt(Prompt { id, kind, message, details_json, choices });
        self.mailbox.post(LoopMsg::Event { token: to.token, session_id: to.session_id, event });
        let answer = rx.recv_timeout(self.timeout);
        self.pending.lock().unwrap_or_else(|p| p.into_inner()).remove(&id);
        match answer {
            Ok(Some(a)) => Ok(a),
            Ok(None) => Err(Error::new(Code::PSM_ERR_USER_CANCELLED, "the user cancelled the question")),
            Err(RecvTimeoutError::Timeout) => Err(Error::new(
                Code::PSM_ERR_DIALOG_TIMEOUT,
                format!("nobody answered the question within {} s", self.timeout.as_secs()),
            )),
            Err(RecvTimeoutError::Disconnected) => {
                Err(Error::new(Code::PSM_ERR_USER_CANCELLED, "the application that was asked disconnected"))
            }
        }
    }

    /// The application's answer to prompt `id`; only the session that was
    /// asked may answer, and only with one of the offered choices.
    pub fn answer(&self, session_id: u64, id: u64, answer: Option<Secret>) -> Result<(), Error> {
        let mut pending = self.pending.lock().unwrap_or_else(|p| p.into_inner());
        let not_found =
            || Error::new(Code::PSM_ERR_NOT_FOUND, format!("no open question {id} in this session"));
        let p = pending.get(&id).filter(|p| p.session_id == session_id).ok_or_else(not_found)?;
        if let Some(a) = &answer
            && !p.choices.is_empty()
            && !p.choices.contains(&a.0)
        {
            return Err(Error::new(
                Code::PSM_ERR_INVALID_ARGUMENT,
                format!("the answer must be one of: {}", p.choices.join(", ")),
            ));
        }
        let p = pending.remove(&id).ok_or_else(not_found)?;
        // The asker may have timed out a moment ago; then nobody listens.
        let _ = p.tx.try_send(answer);
        Ok(())
    }

    /// Cancels one question (its application is gone).
    pub fn cancel(&self, id: u64) {
        self.pending.lock().unwrap_or_else(|p| p.into_inner()).remove(&id);
    }

    /// Cancels every question of a session that went away.
    pub fn cancel_session(&self, session_id: u64) {
        self.pending.lock().unwrap_or_else(|p| p.into_inner()).retain(|_, p| p.session_id != session_id);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn prompts(timeout: Duration) -> (Arc<Prompts>, Arc<Mailbox>) {
        let mailbox = Arc::new(Mailbox::new(Arc::new(|| {})));
        let mut p = Prompts::new(mailbox.clone());
        p.timeout = timeout;
        (Arc::new(p), mailbox)
    }

    fn to(session_id: u64) -> ReplyTo {
        ReplyTo { token: 1, session_id, request_id: 1 }
    }

    /// Runs `ask` on a thread and returns the prompt id it posted.
    fn ask_in_thread(
        p: &Arc<Prompts>,
        mailbox: &Mailbox,
        session: u64,
    ) -> (u64, std::thread::JoinHandle<Result<Secret, Error>>) {
        let p2 = p.clone();
        let h = std::thread::spawn(move || {
            p2.ask(to(session), PromptKind::ServerTrust, "m".into(), "{}".into(), vec!["once".into()])
        });
        loop {
            if let Some(LoopMsg::Event { event: Event::Prompt(pr), .. }) = mailbox.take().pop() {
                return (pr.id, h);
            }
            std::thread::yield_now();
        }
    }

    #[test]
    fn only_the_asked_session_may_answer_and_only_with_a_choice() {
        let (p, mailbox) = prompts(PROMPT_TIMEOUT);
        let (id, h) = ask_in_thread(&p, &mailbox, 7);
        assert_eq!(p.answer(8, id, Some(Secret("once".into()))).unwrap_err().code, Code::PSM_ERR_NOT_FOUND);
        assert_eq!(
            p.answer(7, id, Some(Secret("always".into()))).unwrap_err().code,
            Code::PSM_ERR_INVALID_ARGUMENT
        );
        p.answer(7, id, Some(Secret("once".into()))).unwrap();
        assert_eq!(h.join().unwrap().unwrap().0, "once");
        assert_eq!(p.answer(7, id, None).unwrap_err().code, Code::PSM_ERR_NOT_FOUND);
    }

    #[test]
    fn cancel_timeout_and_disconnect_each_have_their_error() {
        let (p, mailbox) = prompts(PROMPT_TIMEOUT);
        let (id, h) = ask_in_thread(&p, &mailbox, 1);
        p.answer(1, id, None).unwrap();
        assert_eq!(h.join().unwrap().unwrap_err().code, Code::PSM_ERR_USER_CANCELLED);

        let (_, h) = ask_in_thread(&p, &mailbox, 2);
        p.cancel_session(2);
        assert_eq!(h.join().unwrap().unwrap_err().code, Code::PSM_ERR_USER_CANCELLED);

        let (p, mailbox) = prompts(Duration::from_millis(10));
        let (_, h) = ask_in_thread(&p, &mailbox, 3);
        assert_eq!(h.join().unwrap().unwrap_err().code, Code::PSM_ERR_DIALOG_TIMEOUT);
    }
}
