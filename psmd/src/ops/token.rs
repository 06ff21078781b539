//! Token login, logout and password change (on the pool: the KDF is slow
//! on purpose).

use crate::session::{Outcome, Shared};
use psm::proto::{Reply, Secret};
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
            "a new password is needed and psm cannot ask for it yet: pass it",
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
