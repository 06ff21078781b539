//! Prompts the application answers itself, instead of psmd's HTML dialogs.

use super::{Client, unexpected};
use crate::error::Result;
use crate::proto::{Prompt, Reply, Request, Secret};
use std::sync::Arc;

/// A handle on a connection that does not keep it open: what a prompt
/// handler should hold, since the connection holds the handler.
#[derive(Clone, Debug)]
pub struct WeakClient {
    conn: std::sync::Weak<super::conn::Conn>,
    session_id: u64,
    daemon_version: String,
}

impl WeakClient {
    /// The client, while any other handle keeps the connection open.
    pub fn upgrade(&self) -> Option<Client> {
        Some(Client {
            conn: self.conn.upgrade()?,
            session_id: self.session_id,
            daemon_version: self.daemon_version.clone(),
        })
    }
}

impl Client {
    pub fn downgrade(&self) -> WeakClient {
        WeakClient {
            conn: Arc::downgrade(&self.conn),
            session_id: self.session_id,
            daemon_version: self.daemon_version.clone(),
        }
    }

    /// Registers `handler` for this connection's prompts (None removes it).
    /// It runs on whichever thread is waiting on psmd when a prompt comes,
    /// usually the one whose request raised the question, and may answer
    /// at once with [`prompt_answer`](Self::prompt_answer) or later from
    /// any thread. Without a handler, prompts arrive as events.
    pub fn set_prompt_handler(&self, handler: Option<Arc<dyn Fn(Prompt) + Send + Sync>>) -> Result<()> {
        let enabled = handler.is_some();
        self.conn.set_prompt_handler(handler);
        let result = match self.conn.call(Request::SetPromptHandler { enabled }) {
            Ok((Reply::Done, _)) => Ok(()),
            Ok((other, _)) => Err(unexpected(&other)),
            Err(e) => Err(e),
        };
        if result.is_err() && enabled {
            // psmd will not send prompts; keep no handler that waits for them.
            self.conn.set_prompt_handler(None);
        }
        result
    }

    /// Shows psm's read-only view of a stored certificate in a dialog;
    /// returns once the user closed it.
    pub fn cert_view(&self, sha256_hex: &str) -> Result<()> {
        match self.conn.call(Request::CertView { sha256_hex: sha256_hex.to_string() })?.0 {
            Reply::Done => Ok(()),
            other => Err(unexpected(&other)),
        }
    }

    /// Registers `handler` for this connection's events other than prompts
    /// (None removes it): a dialog to open (`Event::Dialog`), one that
    /// ended, changes, shutdown. It runs on whichever thread is waiting on
    /// psmd when the event comes, so an application blocked in a call that
    /// needs the user can still open the dialog. Without a handler, events
    /// wait for [`next_event`](Self::next_event).
    pub fn set_event_handler(&self, handler: Option<Arc<dyn Fn(crate::proto::Event) + Send + Sync>>) {
        self.conn.set_event_handler(handler);
    }

    /// With `on`, prompts arrive as events ([`next_event`](Self::next_event),
    /// `Event::Prompt`) for an application that answers from its own event
    /// loop or another thread, instead of through a handler (any handler is
    /// removed). With `on` false, psmd asks nothing and fails at once.
    pub fn set_prompt_events(&self, on: bool) -> Result<()> {
        self.conn.set_prompt_handler(None);
        match self.conn.call(Request::SetPromptHandler { enabled: on })?.0 {
            Reply::Done => Ok(()),
            other => Err(unexpected(&other)),
        }
    }

    /// Answers the prompt `id`; None cancels it.
    pub fn prompt_answer(&self, id: u64, answer: Option<&str>) -> Result<()> {
        let answer = answer.map(|a| Secret(a.to_string()));
        match self.conn.call(Request::PromptAnswer { id, answer })?.0 {
            Reply::Done => Ok(()),
            other => Err(unexpected(&other)),
        }
    }
}
