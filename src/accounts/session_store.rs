//! actix-session's store in our own database: sessions work on every node without Redis, an
//! administrator can end a user's sessions, and expired ones are cleaned up. Only a SHA-256 of the
//! cookie's key is stored, so a copy of the table opens no session. A session that was ended
//! stays ended: an update never re-creates a missing row. Only `save` makes one: a first visit's
//! anonymous session, and the new key issued at sign-in, set-up or a password change.

use std::collections::HashMap;

use actix_session::storage::{LoadError, SaveError, SessionKey, SessionStore, UpdateError};
use actix_web::cookie::time::Duration as CookieDuration;
use chrono::{DateTime, Duration, Utc};
use rand::distr::{Alphanumeric, SampleString};
use sea_orm::{
    ActiveModelTrait, ActiveValue::Set, ColumnTrait, DatabaseConnection, EntityTrait, QueryFilter,
};
use sha2::{Digest, Sha256};

use super::AccountError;
use super::entities::session;
use crate::clock::SharedClock;
use crate::ids::UserId;

/// The session entry that names the signed-in user (actix-session stores values as JSON).
pub const USER_KEY: &str = "user_id";

#[derive(Clone)]
pub struct DatabaseSessionStore {
    db: DatabaseConnection,
    clock: SharedClock,
}

impl DatabaseSessionStore {
    pub fn new(db: DatabaseConnection, clock: SharedClock) -> Self {
        Self { db, clock }
    }

    fn expiry(&self, ttl: &CookieDuration) -> DateTime<Utc> {
        self.clock.now() + Duration::seconds(ttl.whole_seconds())
    }
}

type State = HashMap<String, String>;

fn key_hash(key: &SessionKey) -> String {
    hex::encode(Sha256::digest(key.as_ref().as_bytes()))
}

fn user_of(state: &State) -> Option<uuid::Uuid> {
    let raw = state.get(USER_KEY)?;
    let text: String = serde_json::from_str(raw).ok()?;
    uuid::Uuid::parse_str(&text).ok()
}

/// actix-session turns a store error into a bare 500 and our error page shows only an incident,
/// so the database's own message is logged here, where it is known.
fn failed(action: &str, err: sea_orm::DbErr) -> anyhow::Error {
    tracing::error!("the session store cannot {action}: {err}");
    anyhow::anyhow!("cannot {action}: {err}")
}

fn new_key() -> Result<SessionKey, anyhow::Error> {
    SessionKey::try_from(Alphanumeric.sample_string(&mut rand::rng(), 64))
        .map_err(|err| anyhow::anyhow!("session key: {err}"))
}

impl SessionStore for DatabaseSessionStore {
    async fn load(&self, session_key: &SessionKey) -> Result<Option<State>, LoadError> {
        let row = session::Entity::find_by_id(key_hash(session_key))
            .one(&self.db)
            .await
            .map_err(|err| LoadError::Other(failed("load a session", err)))?;
        match row {
            Some(row) if row.expires_at > self.clock.now() => serde_json::from_str(&row.state)
                .map(Some)
                .map_err(|err| LoadError::Deserialization(err.into())),
            _ => Ok(None),
        }
    }

    async fn save(&self, state: State, ttl: &CookieDuration) -> Result<SessionKey, SaveError> {
        let key = new_key().map_err(SaveError::Other)?;
        let text =
            serde_json::to_string(&state).map_err(|err| SaveError::Serialization(err.into()))?;
        session::ActiveModel {
            key_hash: Set(key_hash(&key)),
            user_id: Set(user_of(&state)),
            state: Set(text),
            expires_at: Set(self.expiry(ttl)),
        }
        .insert(&self.db)
        .await
        .map_err(|err| SaveError::Other(failed("save a session", err)))?;
        Ok(key)
    }

    async fn update(
        &self,
        session_key: SessionKey,
        state: State,
        ttl: &CookieDuration,
    ) -> Result<SessionKey, UpdateError> {
        let text =
            serde_json::to_string(&state).map_err(|err| UpdateError::Serialization(err.into()))?;
        session::Entity::update_many()
            .col_expr(session::Column::State, text.into())
            .col_expr(session::Column::UserId, user_of(&state).into())
            .col_expr(session::Column::ExpiresAt, self.expiry(ttl).into())
            .filter(session::Column::KeyHash.eq(key_hash(&session_key)))
            .filter(session::Column::ExpiresAt.gt(self.clock.now()))
            .exec(&self.db)
            .await
            .map_err(|err| UpdateError::Other(failed("update a session", err)))?;
        // When no row changed, the session was ended (sign-out, password change, administrator)
        // or expired while this request ran. Saving its state again would bring it back, signed
        // in, for whoever holds the cookie; only sign-in creates sessions. The cookie keeps a key
        // that no longer opens anything, so its next request starts signed out.
        Ok(session_key)
    }

    async fn update_ttl(
        &self,
        session_key: &SessionKey,
        ttl: &CookieDuration,
    ) -> Result<(), anyhow::Error> {
        // An expired session is not extended, even if it was still valid when this request began.
        session::Entity::update_many()
            .col_expr(session::Column::ExpiresAt, self.expiry(ttl).into())
            .filter(session::Column::KeyHash.eq(key_hash(session_key)))
            .filter(session::Column::ExpiresAt.gt(self.clock.now()))
            .exec(&self.db)
            .await
            .map_err(|err| failed("extend a session", err))?;
        Ok(())
    }

    async fn delete(&self, session_key: &SessionKey) -> Result<(), anyhow::Error> {
        session::Entity::delete_by_id(key_hash(session_key))
            .exec(&self.db)
            .await
            .map_err(|err| failed("end a session", err))?;
        Ok(())
    }
}

/// Ends every session of a user (password change, disabled customer, administrator's request).
pub async fn revoke_user_sessions(
    db: &DatabaseConnection,
    user: UserId,
) -> Result<u64, AccountError> {
    let result = session::Entity::delete_many()
        .filter(session::Column::UserId.eq(user.0))
        .exec(db)
        .await?;
    Ok(result.rows_affected)
}

/// Removes expired sessions; run periodically.
pub async fn delete_expired_sessions(
    db: &DatabaseConnection,
    now: DateTime<Utc>,
) -> Result<u64, AccountError> {
    let result = session::Entity::delete_many()
        .filter(session::Column::ExpiresAt.lte(now))
        .exec(db)
        .await?;
    Ok(result.rows_affected)
}
