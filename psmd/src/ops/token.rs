//! Token login, logout and password change (on the pool: the KDF is slow
//! on purpose).

use crate::dialog::PageKind;
use crate::ops::smime::BlockingJob;
use crate::prompt::{Check, Question};
use crate::session::{Outcome, Shared};
use psm::proto::{PromptKind, Reply, Secret};
use psm::{Code, Error};

pub fn login(shared: &Shared, session: u64, password: Option<Secret>) -> Outcome {
    let (store, token) = (shared.store.clone(), shared.token.clone());
    Outcome::Work(Box::new(move || {
        let store = store.lock().unwrap_or_else(|p| p.into_inner());
        token.login(&store, session, password.as_ref().map(|p| p.0.as_str()))?;
        Ok(Reply::Done)
    }))
}

pub fn logout(shared: &Shared, session: u64) -> Outcome {
    shared.token.logout(session);
    Outcome::Reply(Ok(Reply::Done))
}

pub fn set_password(shared: &Shared, session: u64, old: Option<Secret>, new: Option<Secret>) -> Outcome {
    let Some(new) = new else {
        return Outcome::Reply(Err(Error::new(
            Code::PSM_ERR_NO_UI,
            "a new password is needed: pass it, or let psm ask (a prompt handler, or dialogs)",
        )));
    };
    if let Err(e) = shared.tls.policy().check_password(&new.0) {
        return Outcome::Reply(Err(e));
    }
    let (store, token) = (shared.store.clone(), shared.token.clone());
    Outcome::Work(Box::new(move || {
        let mut store = store.lock().unwrap_or_else(|p| p.into_inner());
        token.set_password(&mut store, session, old.as_ref().map(|p| p.0.as_str()), &new.0)?;
        Ok(Reply::Done)
    }))
}

/// `TokenLogin` without a password from an application that lets psm ask:
/// the user types it (dialog or prompt handler), again after a wrong one.
pub fn login_asking() -> BlockingJob {
    Box::new(|jc| {
        let ctx = jc.ctx;
        let session = jc.to.session_id;
        {
            let store = ctx.lock_store();
            match ctx.token.login(&store, session, None) {
                Ok(()) => return Ok(Reply::Done),
                Err(e) if e.code != Code::PSM_ERR_LOGIN_REQUIRED => return Err(e),
                Err(_) => {}
            }
        }
        crate::token::ask_password(ctx, jc.to, session, "log in")?;
        Ok(Reply::Done)
    })
}

/// `TokenSetPassword` without the new password: the user types it twice,
/// and it must meet the policy's rules.
pub fn set_password_asking(old: Option<Secret>) -> BlockingJob {
    Box::new(move |jc| {
        let ctx = jc.ctx;
        let policy = ctx.policy();
        let q = Question {
            kind: PageKind::Prompt(PromptKind::NewPassword),
            message: "Choose the password that protects your psm token: psm asks for it before it uses \
                      your private keys."
                .into(),
            details: serde_json::json!({
                "title": "Your token password",
                "token": "psm soft token",
                "min_length": policy.min_password_length,
                "required": policy.password_required,
            }),
            choices: Vec::new(),
        };
        ctx.prompts.ask_until(jc.to, q, crate::token::PASSWORD_TRIES, |new| {
            if let Err(e) = policy.check_password(&new.0) {
                return Check::Retry(e);
            }
            let mut store = ctx.lock_store();
            match ctx.token.set_password(
                &mut store,
                jc.to.session_id,
                old.as_ref().map(|p| p.0.as_str()),
                &new.0,
            ) {
                Ok(()) => Check::Accept,
                Err(e) => Check::Fail(e),
            }
        })?;
        Ok(Reply::Done)
    })
}

/// `TokenList`: asks every module for its tokens, on a thread of its own
/// (a module may take up to its timeout to answer, and the worker pool
/// must not wait for it).
pub fn list(session: u64) -> Outcome {
    let job: BlockingJob = Box::new(move |jc| Ok(Reply::Tokens(crate::hwtokens::list(jc.ctx, session))));
    Outcome::Blocking { job, can_prompt: false }
}

/// `TokenLoginTo`: the soft token's login, or a module's token's with the
/// PIN given, typed on its PIN pad, or asked (when psm may ask this
/// application's user), on a thread that may wait that long.
pub fn login_to(shared: &Shared, session: u64, uri: String, pin: Option<Secret>, can_ask: bool) -> Outcome {
    if crate::hwtokens::is_soft_token(&uri) {
        return match pin {
            None if can_ask => Outcome::Blocking { job: login_asking(), can_prompt: true },
            pin => login(shared, session, pin),
        };
    }
    let job: BlockingJob = Box::new(move |jc| {
        let pin = pin.map(|p| zeroize::Zeroizing::new(p.0.clone()));
        let to = jc.can_prompt.then_some(jc.to);
        crate::hwtokens::login_to(jc.ctx, session, to, &uri, pin).map(|()| Reply::Done)
    });
    Outcome::Blocking { job, can_prompt: can_ask }
}

pub fn logout_from(shared: &Shared, session: u64, uri: String) -> Outcome {
    if crate::hwtokens::is_soft_token(&uri) {
        return logout(shared, session);
    }
    let job: BlockingJob =
        Box::new(move |jc| crate::hwtokens::logout_from(jc.ctx, &uri).map(|()| Reply::Done));
    Outcome::Blocking { job, can_prompt: false }
}
