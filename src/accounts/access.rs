//! Who may reach which tenant. [`Access`] is built from the signed-in user; [`Access::customer`]
//! is the one scoping function: every handler that touches a customer's data first turns the
//! customer id from the URL into a [`CustomerScope`] here, and domain functions take that scope.
//! A customer outside the user's subtree is reported as *not found*, never as forbidden, so ids
//! of other tenants cannot even be confirmed to exist.

use std::collections::HashSet;

use sea_orm::{
    ColumnTrait, ConnectionTrait, DatabaseConnection, EntityTrait, QueryFilter, QueryOrder,
};
use uuid::Uuid;

use super::entities::{console_user, customer, partner};
use super::{AccountError, Role};
use crate::ids::{CustomerId, PartnerId, UserId};

/// Where a console user belongs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Home {
    Partner(PartnerId),
    Customer(CustomerId),
}

/// The signed-in user and what they may reach.
#[derive(Debug, Clone)]
pub struct Access {
    pub user_id: UserId,
    pub email: String,
    pub display_name: String,
    pub role: Role,
    pub home: Home,
    /// The address the current request came from (set by the web layer), for the audit log.
    pub address: Option<String>,
}

/// Proof that the signed-in user may see this customer. Only [`Access::customer`] makes one.
#[derive(Debug, Clone)]
pub struct CustomerScope {
    customer: customer::Model,
    can_change: bool,
}

impl CustomerScope {
    pub fn id(&self) -> CustomerId {
        CustomerId(self.customer.id)
    }

    pub fn customer(&self) -> &customer::Model {
        &self.customer
    }

    /// False for read-only users: pages hide actions and domain functions refuse them.
    pub fn can_change(&self) -> bool {
        self.can_change
    }

    pub fn require_change(&self) -> Result<(), AccountError> {
        if self.can_change {
            Ok(())
        } else {
            Err(AccountError::Forbidden)
        }
    }
}

impl Access {
    /// The access of an enabled user, or `None` when the user, or the customer they belong to,
    /// no longer exists or is disabled (their session then ends).
    pub async fn load(
        db: &DatabaseConnection,
        user_id: UserId,
    ) -> Result<Option<Access>, AccountError> {
        let Some(user) = console_user::Entity::find_by_id(user_id.0).one(db).await? else {
            return Ok(None);
        };
        Self::from_user(db, user).await
    }

    pub async fn from_user(
        db: &DatabaseConnection,
        user: console_user::Model,
    ) -> Result<Option<Access>, AccountError> {
        if user.disabled {
            return Ok(None);
        }
        let Some(role) = Role::parse(&user.role) else {
            return Ok(None);
        };
        let home = match (role, user.partner_id, user.customer_id) {
            (Role::PartnerAdmin, Some(partner), _) => {
                if partner_disabled(db, partner).await? {
                    return Ok(None);
                }
                Home::Partner(PartnerId(partner))
            }
            (Role::CustomerAdmin | Role::ReadOnly, _, Some(customer_id)) => {
                let customer = customer::Entity::find_by_id(customer_id).one(db).await?;
                match customer {
                    Some(customer) if !customer.disabled => Home::Customer(CustomerId(customer_id)),
                    _ => return Ok(None),
                }
            }
            _ => return Ok(None),
        };
        Ok(Some(Access {
            user_id: UserId(user.id),
            email: user.email,
            display_name: user.display_name,
            role,
            home,
            address: None,
        }))
    }

    pub fn is_partner(&self) -> bool {
        matches!(self.home, Home::Partner(_))
    }

    /// The partner this user administers, if any.
    pub fn partner_id(&self) -> Option<PartnerId> {
        match self.home {
            Home::Partner(id) => Some(id),
            Home::Customer(_) => None,
        }
    }

    /// The partner ids a partner administrator reaches: their own partner and every sub-partner
    /// below it. Empty for customer users.
    pub async fn partner_subtree<C: ConnectionTrait>(
        &self,
        db: &C,
    ) -> Result<Vec<Uuid>, AccountError> {
        let Home::Partner(root) = self.home else {
            return Ok(Vec::new());
        };
        partner_subtree(db, root).await
    }

    /// The scoping function: the customer `id` if this user may see it, else `NotFound`.
    pub async fn customer(
        &self,
        db: &DatabaseConnection,
        id: CustomerId,
    ) -> Result<CustomerScope, AccountError> {
        let customer = customer::Entity::find_by_id(id.0)
            .one(db)
            .await?
            .ok_or(AccountError::NotFound)?;
        let reachable = match self.home {
            Home::Customer(own) => own == id,
            Home::Partner(_) => self
                .partner_subtree(db)
                .await?
                .contains(&customer.partner_id),
        };
        if !reachable {
            return Err(AccountError::NotFound);
        }
        Ok(CustomerScope {
            customer,
            can_change: self.role != Role::ReadOnly,
        })
    }

    /// Every customer this user may see, by name.
    pub async fn customers(
        &self,
        db: &DatabaseConnection,
    ) -> Result<Vec<customer::Model>, AccountError> {
        let query = match self.home {
            Home::Customer(own) => customer::Entity::find().filter(customer::Column::Id.eq(own.0)),
            Home::Partner(_) => customer::Entity::find()
                .filter(customer::Column::PartnerId.is_in(self.partner_subtree(db).await?)),
        };
        Ok(query.order_by_asc(customer::Column::Name).all(db).await?)
    }

    /// A partner in this user's subtree, else `NotFound`.
    pub async fn partner(
        &self,
        db: &DatabaseConnection,
        id: PartnerId,
    ) -> Result<partner::Model, AccountError> {
        if !self.partner_subtree(db).await?.contains(&id.0) {
            return Err(AccountError::NotFound);
        }
        partner::Entity::find_by_id(id.0)
            .one(db)
            .await?
            .ok_or(AccountError::NotFound)
    }

    /// True when `user` is an account this user can already see: a customer user sees the users
    /// of their own customer; a partner administrator sees every account in the partner's
    /// subtree, its customers' users included. Used to decide what a form may say about an
    /// account, so nothing is confirmed about accounts elsewhere.
    pub async fn sees_user<C: ConnectionTrait>(
        &self,
        db: &C,
        user: &console_user::Model,
    ) -> Result<bool, AccountError> {
        match self.home {
            Home::Customer(own) => Ok(user.customer_id == Some(own.0)),
            Home::Partner(_) => {
                let subtree = self.partner_subtree(db).await?;
                if let Some(partner) = user.partner_id {
                    return Ok(subtree.contains(&partner));
                }
                let Some(customer_id) = user.customer_id else {
                    return Ok(false);
                };
                Ok(customer::Entity::find_by_id(customer_id)
                    .one(db)
                    .await?
                    .is_some_and(|c| subtree.contains(&c.partner_id)))
            }
        }
    }

    /// Partner administrators manage tenancy; nobody else does.
    pub fn require_partner_admin(&self) -> Result<PartnerId, AccountError> {
        match (self.role, self.home) {
            (Role::PartnerAdmin, Home::Partner(id)) => Ok(id),
            _ => Err(AccountError::NotFound),
        }
    }
}

/// `root` and every partner below it.
pub async fn partner_subtree<C: ConnectionTrait>(
    db: &C,
    root: PartnerId,
) -> Result<Vec<Uuid>, AccountError> {
    let mut reached: HashSet<Uuid> = HashSet::from([root.0]);
    let mut frontier = vec![root.0];
    while !frontier.is_empty() {
        let children = partner::Entity::find()
            .filter(partner::Column::ParentId.is_in(frontier.clone()))
            .all(db)
            .await?;
        frontier = children
            .into_iter()
            .map(|p| p.id)
            .filter(|id| reached.insert(*id))
            .collect();
    }
    Ok(reached.into_iter().collect())
}

/// True when the partner, or a partner above it, is disabled or gone: a partner cut off by
/// whoever is above it takes the partners below it along.
async fn partner_disabled(db: &DatabaseConnection, id: Uuid) -> Result<bool, AccountError> {
    let mut next = Some(id);
    let mut seen = HashSet::new();
    while let Some(id) = next {
        if !seen.insert(id) {
            break;
        }
        match partner::Entity::find_by_id(id).one(db).await? {
            Some(p) if !p.disabled => next = p.parent_id,
            _ => return Ok(true),
        }
    }
    Ok(false)
}
