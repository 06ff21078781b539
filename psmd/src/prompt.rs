//! Questions for the user. The thread that needs an answer (a handshake or
//! blocking-job thread) blocks in [`Prompts::ask`] or
//! [`Prompts::ask_until`], and the question goes one of two ways:
//!
//! - to the application's prompt handler, as a `Prompt` event it answers
//!   with `PromptAnswer` (unless the policy keeps passwords out of
//!   applications' hands);
//! - as an HTML dialog psmd serves on loopback ([`crate::dialog`]): the
//!   application gets a `Dialog` event with the URL, the user answers in
//!   the page, and a `DialogDone` event follows.
//!
//! An application with neither gets `PSM_ERR_NO_UI` at once. Password
//! questions for the token are asked one at a time.

use crate::dialog::{DialogServer, Page, PageKind};
use crate::mailbox::{LoopMsg, Mailbox};
use crate::pool::ReplyTo;
use psm::proto::{Event, Prompt, PromptKind, Secret};
use psm::{Code, Error};
use std::collections::{HashMap, VecDeque};
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::mpsc::{Receiver, RecvTimeoutError, SyncSender, sync_channel};
use std::sync::{Arc, Mutex, MutexGuard, OnceLock};
use std::time::{Duration, Instant};

/// How long a question waits for its answer unless configured otherwise.
pub const PROMPT_TIMEOUT: Duration = Duration::from_secs(5 * 60);
/// Questions one session may have open at once.
pub const MAX_PROMPTS_PER_SESSION: usize = 16;
/// Ended dialogs remembered, so that their URL gets 410 rather than 404.
const ENDED_REMEMBERED: usize = 256;

/// What to ask.
pub struct Question {
    pub kind: PageKind,
    /// One or two sentences for the user, in plain words.
    pub message: String,
    /// Everything the question is about (host, certificate, ...).
    pub details: serde_json::Value,
    /// The answers accepted; empty: any text (a password).
    pub choices: Vec<String>,
}

/// What the asker makes of an answer.
pub enum Check {
    Accept,
    /// Wrong (a bad password): ask again if tries are left, else fail with it.
    Retry(Error),
    Fail(Error),
}

/// How a page's answer ended, for the page that answered.
#[derive(Clone, Debug)]
pub enum Verdict {
    Done,
    Retry(String),
    Failed(String),
}

/// An answer, with where to send the verdict when it came from a page.
pub struct Answer {
    pub value: Option<Secret>,
    pub verdict: Option<SyncSender<Verdict>>,
}

/// What psmd knows of an application's ways to ask its user.
#[derive(Clone, Debug, Default)]
pub struct SessionUi {
    pub app: String,
    pub pid: i32,
    pub exe: Option<String>,
    pub handler: bool,
    pub dialogs: bool,
}

/// A question shown as a page: what the web server needs to serve it.
pub struct Web {
    /// SHA-256 of the URL token (the token itself is only in the URL).
    pub token_hash: [u8; 32],
    /// Set by the first GET: only the browser that got it may load or answer.
    pub cookie: Option<[u8; 32]>,
    /// The form nonce; new with every rendering of the form.
    pub nonce: [u8; 32],
    pub page: Arc<Page>,
    /// A note above the form (a wrong password, tries left).
    pub note: Option<String>,
    /// An answer is being checked; a second POST meanwhile is refused.
    pub checking: bool,
}

struct Pending {
    session_id: u64,
    choices: Vec<String>,
    tx: SyncSender<Answer>,
    web: Option<Web>,
}

#[derive(Default)]
struct Open {
    pending: HashMap<u64, Pending>,
    /// URL token hash → question id.
    by_token: HashMap<[u8; 32], u64>,
    ended: VecDeque<[u8; 32]>,
}

/// A dialog's state as the web server finds it by URL token.
pub enum Lookup<'a> {
    Open(u64, &'a mut Web, u64),
    Ended,
    Unknown,
}

pub struct Prompts {
    open: Mutex<Open>,
    sessions: Mutex<HashMap<u64, SessionUi>>,
    next: AtomicU64,
    mailbox: Arc<Mailbox>,
    timeout: Duration,
    /// Whether the policy lets applications answer password prompts.
    app_passwords: AtomicBool,
    /// Held while a token password is asked: one such question at a time.
    token_questions: Mutex<()>,
    /// Where the dialog server's private socket goes.
    socket_dir: Option<PathBuf>,
    server: OnceLock<Result<Arc<DialogServer>, Error>>,
    /// Set by the server once started, for the pages it serves.
    me: OnceLock<std::sync::Weak<Prompts>>,
}

/// 256 random bits: URL tokens, cookies, form nonces.
pub(crate) fn random32() -> [u8; 32] {
    let mut b = [0u8; 32];
    getrandom::fill(&mut b).expect("the kernel's random source failed");
    b
}

/// What a dialog is looked up by: the SHA-256 of its URL token, so that
/// the token itself is kept nowhere but in the URL.
pub(crate) fn token_hash(b: &[u8]) -> [u8; 32] {
    use sha2::Digest;
    sha2::Sha256::digest(b).into()
}

impl Prompts {
    pub fn new(mailbox: Arc<Mailbox>, socket_dir: Option<PathBuf>, timeout: Duration) -> Arc<Prompts> {
        let p = Arc::new(Prompts {
            open: Mutex::new(Open::default()),
            sessions: Mutex::new(HashMap::new()),
            next: AtomicU64::new(1),
            mailbox,
            timeout,
            app_passwords: AtomicBool::new(true),
            token_questions: Mutex::new(()),
            socket_dir,
            server: OnceLock::new(),
            me: OnceLock::new(),
        });
        let _ = p.me.set(Arc::downgrade(&p));
        p
    }

    pub fn timeout(&self) -> Duration {
        self.timeout
    }

    fn lock(&self) -> MutexGuard<'_, Open> {
        self.open.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Records how a session can reach its user (after Hello, and when it
    /// sets or removes a prompt handler).
    pub fn set_session(&self, session_id: u64, ui: SessionUi) {
        self.sessions.lock().unwrap_or_else(|p| p.into_inner()).insert(session_id, ui);
    }

    /// What the policy says of applications answering password prompts.
    pub fn set_app_passwords(&self, allowed: bool) {
        self.app_passwords.store(allowed, Ordering::Relaxed);
    }

    /// The dialog server, started on first use.
    pub fn server(&self) -> Result<Arc<DialogServer>, Error> {
        self.server
            .get_or_init(|| {
                let me = self.me.get().cloned().unwrap_or_default();
                DialogServer::start(me, self.socket_dir.as_deref()).map(Arc::new)
            })
            .clone()
    }

    /// The dialog server if it runs (for Status and tests).
    pub fn running_server(&self) -> Option<Arc<DialogServer>> {
        self.server.get().and_then(|r| r.as_ref().ok().cloned())
    }

    /// Asks once and returns the answer: one of the question's choices (any
    /// text when there are none). A cancel is `PSM_ERR_USER_CANCELLED`,
    /// silence `PSM_ERR_DIALOG_TIMEOUT`.
    pub fn ask(&self, to: ReplyTo, q: Question) -> Result<Secret, Error> {
        let mut out = None;
        self.ask_until(to, q, 1, |a| {
            out = Some(a.clone());
            Check::Accept
        })?;
        out.ok_or_else(|| Error::new(Code::PSM_ERR_INTERNAL, "a question ended without its answer"))
    }

    /// Asks until `check` accepts an answer, at most `tries` times; the user
    /// sees why an answer was refused. A dialog stays the same window for
    /// every try.
    pub fn ask_until(
        &self,
        to: ReplyTo,
        q: Question,
        tries: u32,
        mut check: impl FnMut(&Secret) -> Check,
    ) -> Result<(), Error> {
        let ui = self.sessions.lock().unwrap_or_else(|p| p.into_inner()).get(&to.session_id).cloned();
        let ui = ui.unwrap_or_default();
        let secret = q.kind.is_password();
        let policy_allows = !secret || self.app_passwords.load(Ordering::Relaxed);
        // One token-password question at a time, across applications.
        let _serial = secret.then(|| self.token_questions.lock().unwrap_or_else(|p| p.into_inner()));
        // Confirming a key's use is the user's word, not the application's
        // (the application is the one that wants the key).
        let confirm = q.kind == PageKind::Prompt(PromptKind::Confirm);
        if ui.handler && policy_allows && !confirm && q.kind.prompt_kind().is_some() {
            self.via_handler(to, q, tries, &mut check)
        } else if ui.dialogs {
            self.via_dialog(to, &ui, q, tries, &mut check)
        } else if confirm {
            Err(Error::new(
                Code::PSM_ERR_NO_UI,
                "the security policy wants the user to confirm each use of this key in psm's own dialog, and \
                 this application shows no dialogs (it connected with PSM_CONNECT_NO_DIALOGS)",
            ))
        } else if ui.handler && !policy_allows {
            Err(Error::new(
                Code::PSM_ERR_NO_UI,
                "the security policy does not let applications ask for the token password, and this \
                 application shows no dialogs (it connected with PSM_CONNECT_NO_DIALOGS)",
            ))
        } else {
            Err(Error::new(
                Code::PSM_ERR_NO_UI,
                format!(
                    "psm must ask the user ({}), but this application shows no dialogs and has no prompt handler",
                    q.kind.name()
                ),
            ))
        }
    }

    fn register(
        &self,
        to: ReplyTo,
        choices: &[String],
        web: Option<Web>,
    ) -> Result<(u64, Receiver<Answer>), Error> {
        let id = self.next.fetch_add(1, Ordering::Relaxed);
        let (tx, rx) = sync_channel(4);
        let mut open = self.lock();
        if open.pending.values().filter(|p| p.session_id == to.session_id).count() >= MAX_PROMPTS_PER_SESSION
        {
            return Err(Error::new(
                Code::PSM_ERR_BUSY,
                format!("{MAX_PROMPTS_PER_SESSION} questions already wait for this application's answer"),
            ));
        }
        if let Some(w) = &web {
            open.by_token.insert(w.token_hash, id);
        }
        open.pending.insert(id, Pending { session_id: to.session_id, choices: choices.to_vec(), tx, web });
        Ok((id, rx))
    }

    fn unregister(&self, id: u64) {
        let mut open = self.lock();
        if let Some(Pending { web: Some(w), .. }) = open.pending.remove(&id) {
            open.by_token.remove(&w.token_hash);
            open.ended.push_back(w.token_hash);
            if open.ended.len() > ENDED_REMEMBERED {
                open.ended.pop_front();
            }
        }
    }

    fn wait(&self, rx: &Receiver<Answer>, deadline: Instant) -> Result<Answer, Error> {
        match rx.recv_timeout(deadline.saturating_duration_since(Instant::now())) {
            Ok(a) => Ok(a),
            Err(RecvTimeoutError::Timeout) => Err(Error::new(
                Code::PSM_ERR_DIALOG_TIMEOUT,
                format!("nobody answered the question within {} s", self.timeout.as_secs()),
            )),
            Err(RecvTimeoutError::Disconnected) => {
                Err(Error::new(Code::PSM_ERR_USER_CANCELLED, "the application that was asked disconnected"))
            }
        }
    }

    fn via_handler(
        &self,
        to: ReplyTo,
        q: Question,
        tries: u32,
        check: &mut dyn FnMut(&Secret) -> Check,
    ) -> Result<(), Error> {
        let kind = q.kind.prompt_kind().unwrap_or(PromptKind::Password);
        let details_json = q.details.to_string();
        let mut note: Option<String> = None;
        for attempt in 1..=tries.max(1) {
            let (id, rx) = self.register(to, &q.choices, None)?;
            let message = match &note {
                Some(n) => format!("{n} {}", q.message),
                None => q.message.clone(),
            };
            let prompt =
                Prompt { id, kind, message, details_json: details_json.clone(), choices: q.choices.clone() };
            self.mailbox.post(LoopMsg::Event {
                token: to.token,
                session_id: to.session_id,
                event: Event::Prompt(prompt),
            });
            let answer = self.wait(&rx, Instant::now() + self.timeout);
            self.unregister(id);
            let value = answer?.value.ok_or_else(cancelled)?;
            match check(&value) {
                Check::Accept => return Ok(()),
                Check::Retry(e) if attempt < tries => note = Some(e.message),
                Check::Retry(e) | Check::Fail(e) => return Err(e),
            }
        }
        Err(cancelled())
    }

    fn via_dialog(
        &self,
        to: ReplyTo,
        ui: &SessionUi,
        q: Question,
        tries: u32,
        check: &mut dyn FnMut(&Secret) -> Check,
    ) -> Result<(), Error> {
        let server = self.server()?;
        let token = random32();
        let (width, height) = q.kind.size();
        let page = Arc::new(Page {
            kind: q.kind,
            message: q.message,
            details: q.details,
            choices: q.choices.clone(),
            app: ui.app.clone(),
            pid: ui.pid,
            exe: ui.exe.clone(),
        });
        let web = Web {
            token_hash: token_hash(&token),
            cookie: None,
            nonce: random32(),
            page,
            note: None,
            checking: false,
        };
        let (id, rx) = self.register(to, &q.choices, Some(web))?;
        let url = server.url(&hex::encode(token));
        let event = Event::Dialog { id, width, height, modal: true, url };
        self.mailbox.post(LoopMsg::Event { token: to.token, session_id: to.session_id, event });
        tracing::debug!(id, kind = q.kind.name(), session = to.session_id, "dialog opened");
        let deadline = Instant::now() + self.timeout;
        let result = (|| {
            for attempt in 1..=tries.max(1) {
                let Answer { value, verdict } = self.wait(&rx, deadline)?;
                let tell = |v: Verdict| {
                    if let Some(tx) = &verdict {
                        let _ = tx.try_send(v);
                    }
                };
                let Some(value) = value else {
                    tell(Verdict::Done);
                    return Err(cancelled());
                };
                match check(&value) {
                    Check::Accept => {
                        tell(Verdict::Done);
                        return Ok(());
                    }
                    Check::Retry(e) if attempt < tries => {
                        let left = tries - attempt;
                        let note = format!(
                            "{} ({left} {} left)",
                            e.message,
                            if left == 1 { "try" } else { "tries" }
                        );
                        self.renew_form(id, note.clone());
                        tell(Verdict::Retry(note));
                    }
                    Check::Retry(e) | Check::Fail(e) => {
                        tell(Verdict::Failed(e.message.clone()));
                        return Err(e);
                    }
                }
            }
            Err(cancelled())
        })();
        self.unregister(id);
        self.mailbox.post(LoopMsg::Event {
            token: to.token,
            session_id: to.session_id,
            event: Event::DialogDone { id },
        });
        tracing::debug!(id, ok = result.is_ok(), "dialog closed");
        result
    }

    /// A new nonce and a note for a form shown again.
    fn renew_form(&self, id: u64, note: String) {
        if let Some(Pending { web: Some(w), .. }) = self.lock().pending.get_mut(&id) {
            w.nonce = random32();
            w.note = Some(note);
            w.checking = false;
        }
    }

    /// The application's answer to prompt `id`; only the session that was
    /// asked may answer, only with one of the offered choices, and never a
    /// question shown as a dialog (the user answers those in the page).
    pub fn answer(&self, session_id: u64, id: u64, answer: Option<Secret>) -> Result<(), Error> {
        let mut open = self.lock();
        let not_found =
            || Error::new(Code::PSM_ERR_NOT_FOUND, format!("no open question {id} in this session"));
        let p = open.pending.get(&id).filter(|p| p.session_id == session_id).ok_or_else(not_found)?;
        if p.web.is_some() {
            return Err(Error::new(
                Code::PSM_ERR_NOT_FOUND,
                format!("question {id} is a dialog: the user answers it in the dialog's page"),
            ));
        }
        if let Some(a) = &answer
            && !p.choices.is_empty()
            && !p.choices.contains(&a.0)
        {
            return Err(Error::new(
                Code::PSM_ERR_INVALID_ARGUMENT,
                format!("the answer must be one of: {}", p.choices.join(", ")),
            ));
        }
        let p = open.pending.remove(&id).ok_or_else(not_found)?;
        // The asker may have timed out a moment ago; then nobody listens.
        let _ = p.tx.try_send(Answer { value: answer, verdict: None });
        Ok(())
    }

    /// Runs `f` on the dialog whose URL token hashes to `token_hash`.
    pub fn with_dialog<R>(&self, token_hash: &[u8; 32], f: impl FnOnce(Lookup<'_>) -> R) -> R {
        let mut open = self.lock();
        let open = &mut *open;
        match open.by_token.get(token_hash).copied() {
            Some(id) => match open.pending.get_mut(&id) {
                Some(Pending { web: Some(w), session_id, .. }) => f(Lookup::Open(id, w, *session_id)),
                _ => f(Lookup::Unknown),
            },
            None if open.ended.contains(token_hash) => f(Lookup::Ended),
            None => f(Lookup::Unknown),
        }
    }

    /// A page's answer to dialog `id` (checked against its choices by the
    /// caller); the verdict comes back on the returned receiver.
    pub fn answer_dialog(&self, id: u64, value: Option<Secret>) -> Result<Receiver<Verdict>, Error> {
        let open = self.lock();
        let p =
            open.pending.get(&id).ok_or_else(|| Error::new(Code::PSM_ERR_NOT_FOUND, "the dialog ended"))?;
        let (vtx, vrx) = sync_channel(1);
        p.tx.try_send(Answer { value, verdict: Some(vtx) })
            .map_err(|_| Error::new(Code::PSM_ERR_BUSY, "an answer is being checked"))?;
        Ok(vrx)
    }

    /// Cancels one question (its application is gone).
    pub fn cancel(&self, id: u64) {
        self.unregister(id);
    }

    /// Cancels every question of a session that went away.
    pub fn cancel_session(&self, session_id: u64) {
        self.sessions.lock().unwrap_or_else(|p| p.into_inner()).remove(&session_id);
        let ids: Vec<u64> = self
            .lock()
            .pending
            .iter()
            .filter(|(_, p)| p.session_id == session_id)
            .map(|(id, _)| *id)
            .collect();
        for id in ids {
            self.unregister(id);
        }
    }

    /// Open dialogs (for Status).
    pub fn open_dialogs(&self) -> usize {
        self.lock().pending.values().filter(|p| p.web.is_some()).count()
    }
}

fn cancelled() -> Error {
    Error::new(Code::PSM_ERR_USER_CANCELLED, "the user cancelled the question")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn prompts(timeout: Duration) -> (Arc<Prompts>, Arc<Mailbox>) {
        let mailbox = Arc::new(Mailbox::new(Arc::new(|| {})));
        let p = Prompts::new(mailbox.clone(), None, timeout);
        for s in 1..=8 {
            p.set_session(s, SessionUi { handler: true, ..Default::default() });
        }
        (p, mailbox)
    }

    fn to(session_id: u64) -> ReplyTo {
        ReplyTo { token: 1, session_id, request_id: 1 }
    }

    fn question() -> Question {
        Question {
            kind: PageKind::Prompt(PromptKind::ServerTrust),
            message: "m".into(),
            details: serde_json::json!({}),
            choices: vec!["once".into()],
        }
    }

    /// Runs `ask` on a thread and returns the prompt id it posted.
    fn ask_in_thread(
        p: &Arc<Prompts>,
        mailbox: &Mailbox,
        session: u64,
    ) -> (u64, std::thread::JoinHandle<Result<Secret, Error>>) {
        let p2 = p.clone();
        let h = std::thread::spawn(move || p2.ask(to(session), question()));
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

    #[test]
    fn no_handler_and_no_dialogs_is_no_ui_at_once() {
        let (p, _) = prompts(PROMPT_TIMEOUT);
        p.set_session(9, SessionUi::default());
        assert_eq!(p.ask(to(9), question()).unwrap_err().code, Code::PSM_ERR_NO_UI);
        // A session psmd never heard of is the same.
        assert_eq!(p.ask(to(99), question()).unwrap_err().code, Code::PSM_ERR_NO_UI);
    }

    #[test]
    fn a_policy_that_keeps_passwords_from_applications_leaves_no_ui_without_dialogs() {
        let (p, _) = prompts(PROMPT_TIMEOUT);
        p.set_app_passwords(false);
        let q = Question {
            kind: PageKind::Prompt(PromptKind::Password),
            message: "m".into(),
            details: serde_json::json!({}),
            choices: vec![],
        };
        let e = p.ask(to(1), q).unwrap_err();
        assert_eq!(e.code, Code::PSM_ERR_NO_UI);
        assert!(e.message.contains("policy"), "{}", e.message);
    }

    #[test]
    fn a_wrong_answer_is_asked_again_until_tries_run_out() {
        let (p, mailbox) = prompts(PROMPT_TIMEOUT);
        let p2 = p.clone();
        let h = std::thread::spawn(move || {
            let q = Question {
                kind: PageKind::Prompt(PromptKind::Password),
                message: "Enter it.".into(),
                details: serde_json::json!({}),
                choices: vec![],
            };
            p2.ask_until(to(1), q, 2, |a| {
                if a.0 == "right" {
                    Check::Accept
                } else {
                    Check::Retry(Error::new(Code::PSM_ERR_BAD_PASSWORD, "wrong"))
                }
            })
        });
        let mut seen = Vec::new();
        while seen.len() < 2 {
            for m in mailbox.take() {
                if let LoopMsg::Event { event: Event::Prompt(pr), .. } = m {
                    p.answer(1, pr.id, Some(Secret("bad".into()))).unwrap();
                    seen.push(pr.message);
                }
            }
            std::thread::yield_now();
        }
        assert_eq!(h.join().unwrap().unwrap_err().code, Code::PSM_ERR_BAD_PASSWORD);
        assert_eq!(seen, ["Enter it.", "wrong Enter it."]);
    }
}
