//! Who receives what: each customer and each partner keeps a set of recipients (its own console
//! users and extra addresses), each marked for alert e-mails, the daily summary, or both. Until a
//! set is chosen, the owner's administrators receive alerts and nobody the summary. An alert of
//! a customer goes to the customer's set and to the set of every partner above it. Reading and
//! changing a set takes a `CustomerScope` or a partner the signed-in user administers; the
//! mailer resolves addresses with the system's view.

use std::collections::{BTreeSet, HashMap, HashSet};

use sea_orm::{
    ActiveValue::Set, ColumnTrait, ConnectionTrait, DatabaseConnection, EntityTrait, QueryFilter,
    QueryOrder, TransactionTrait,
};
use uuid::Uuid;

use super::entities::{mail_recipient, mail_recipient_set};
use crate::accounts::access::CustomerScope;
use crate::accounts::entities::{console_user, customer, partner};
use crate::accounts::{Access, AccountError, FieldError, Role, audit, validate_email};
use crate::clock::Clock;
use crate::ids::{CustomerId, PartnerId};

/// Whose set it is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Owner {
    Customer(CustomerId),
    Partner(PartnerId),
}

impl Owner {
    fn id(self) -> Uuid {
        match self {
            Owner::Customer(id) => id.0,
            Owner::Partner(id) => id.0,
        }
    }

    fn kind(self) -> &'static str {
        match self {
            Owner::Customer(_) => "customer",
            Owner::Partner(_) => "partner",
        }
    }
}

/// What a recipient gets.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Purpose {
    Alerts,
    Summary,
}

/// One console user of the owner, with what they receive.
#[derive(Debug, Clone)]
pub struct UserChoice {
    pub user_id: Uuid,
    pub name: String,
    pub email: String,
    pub role: &'static str,
    pub alerts: bool,
    pub summary: bool,
}

/// The owner's set as its form shows it.
#[derive(Debug, Clone, Default)]
pub struct Choices {
    pub users: Vec<UserChoice>,
    pub extra_alerts: Vec<String>,
    pub extra_summary: Vec<String>,
    /// False while the defaults apply (nobody chose yet).
    pub chosen: bool,
    pub updated_by: Option<String>,
}

/// What the form posted: the users ticked for each purpose and extra addresses, one a line.
#[derive(Debug, Clone, Default)]
pub struct RecipientsForm {
    pub alert_users: Vec<String>,
    pub summary_users: Vec<String>,
    pub alert_addresses: String,
    pub summary_addresses: String,
}

impl RecipientsForm {
    pub fn from_pairs(fields: &[(String, String)]) -> Self {
        let mut form = RecipientsForm::default();
        for (key, value) in fields {
            match key.as_str() {
                "alert_user" => form.alert_users.push(value.clone()),
                "summary_user" => form.summary_users.push(value.clone()),
                "alert_addresses" => form.alert_addresses = value.clone(),
                "summary_addresses" => form.summary_addresses = value.clone(),
                _ => {}
            }
        }
        form
    }
}

/// Extra addresses a set may hold per purpose.
const MAX_EXTRA: usize = 20;

/// The console users who may be chosen: the customer's users, or the partner's administrators.
async fn owner_users(
    db: &impl ConnectionTrait,
    owner: Owner,
) -> Result<Vec<console_user::Model>, sea_orm::DbErr> {
    let query = match owner {
        Owner::Customer(id) => {
            console_user::Entity::find().filter(console_user::Column::CustomerId.eq(id.0))
        }
        Owner::Partner(id) => {
            console_user::Entity::find().filter(console_user::Column::PartnerId.eq(id.0))
        }
    };
    query
        .filter(console_user::Column::Disabled.eq(false))
        .order_by_asc(console_user::Column::Email)
        .all(db)
        .await
}

fn is_admin(user: &console_user::Model) -> bool {
    matches!(
        Role::parse(&user.role),
        Some(Role::CustomerAdmin | Role::PartnerAdmin)
    )
}

async fn choices(db: &DatabaseConnection, owner: Owner) -> Result<Choices, sea_orm::DbErr> {
    let users = owner_users(db, owner).await?;
    let set = mail_recipient_set::Entity::find_by_id(owner.id())
        .one(db)
        .await?;
    let rows = mail_recipient::Entity::find()
        .filter(mail_recipient::Column::OwnerId.eq(owner.id()))
        .all(db)
        .await?;
    let by_user: HashMap<Uuid, &mail_recipient::Model> = rows
        .iter()
        .filter_map(|row| row.user_id.map(|id| (id, row)))
        .collect();
    let chosen = set.is_some();
    let users = users
        .into_iter()
        .map(|user| {
            let (alerts, summary) = match (chosen, by_user.get(&user.id)) {
                (true, Some(row)) => (row.alerts, row.summary),
                (true, None) => (false, false),
                (false, _) => (is_admin(&user), false),
            };
            UserChoice {
                user_id: user.id,
                role: Role::parse(&user.role).map_or("", Role::label),
                name: user.display_name,
                email: user.email,
                alerts,
                summary,
            }
        })
        .collect();
    let extra = |purpose: Purpose| {
        rows.iter()
            .filter(|row| match purpose {
                Purpose::Alerts => row.alerts,
                Purpose::Summary => row.summary,
            })
            .filter_map(|row| row.address.clone())
            .collect::<Vec<_>>()
    };
    Ok(Choices {
        users,
        extra_alerts: extra(Purpose::Alerts),
        extra_summary: extra(Purpose::Summary),
        chosen,
        updated_by: set.and_then(|s| s.updated_by),
    })
}

/// The customer's set, for its Settings page.
pub async fn customer_choices(
    db: &DatabaseConnection,
    scope: &CustomerScope,
) -> Result<Choices, sea_orm::DbErr> {
    choices(db, Owner::Customer(scope.id())).await
}

/// The set of the partner the signed-in administrator belongs to.
pub async fn partner_choices(
    db: &DatabaseConnection,
    access: &Access,
) -> Result<Choices, AccountError> {
    let partner = access.require_partner_admin()?;
    Ok(choices(db, Owner::Partner(partner)).await?)
}

/// Checks one textarea of addresses: one a line (commas and semicolons also split).
fn parse_addresses(
    field: &'static str,
    text: &str,
    errors: &mut Vec<FieldError>,
) -> BTreeSet<String> {
    let mut found = BTreeSet::new();
    let mut bad = Vec::new();
    for part in text.split(['\n', '\r', ',', ';']) {
        let part = part.trim();
        if part.is_empty() {
            continue;
        }
        let mut problems = Vec::new();
        let address = validate_email(field, part, &mut problems);
        if problems.is_empty() {
            found.insert(address);
        } else {
            bad.push(
                part.chars()
                    .filter(|c| !c.is_control())
                    .take(80)
                    .collect::<String>(),
            );
        }
    }
    if !bad.is_empty() {
        errors.push(FieldError {
            field,
            message: format!(
                "Not an e-mail address: {}. Enter one address a line, like name@example.com.",
                bad.join(", ")
            ),
        });
    } else if found.len() > MAX_EXTRA {
        errors.push(FieldError {
            field,
            message: format!("Enter at most {MAX_EXTRA} addresses."),
        });
    }
    found
}

async fn save(
    db: &DatabaseConnection,
    clock: &dyn Clock,
    access: &Access,
    owner: Owner,
    audit_owner: audit::Owner,
    form: &RecipientsForm,
) -> Result<(), AccountError> {
    let mut errors = Vec::new();
    let alert_extra = parse_addresses("alert_addresses", &form.alert_addresses, &mut errors);
    let summary_extra = parse_addresses("summary_addresses", &form.summary_addresses, &mut errors);
    if !errors.is_empty() {
        return Err(AccountError::Invalid(errors));
    }
    let users = owner_users(db, owner).await?;
    let ticked = |list: &[String]| -> HashSet<Uuid> {
        list.iter().filter_map(|id| id.parse().ok()).collect()
    };
    let (alert_users, summary_users) = (ticked(&form.alert_users), ticked(&form.summary_users));
    let mut rows = Vec::new();
    let mut chosen_users = Vec::new();
    // Only the owner's own users can be chosen: an id from elsewhere is ignored.
    for user in &users {
        let (alerts, summary) = (
            alert_users.contains(&user.id),
            summary_users.contains(&user.id),
        );
        if alerts || summary {
            chosen_users.push(user.email.clone());
            rows.push(mail_recipient::ActiveModel {
                id: Set(Uuid::new_v4()),
                owner_id: Set(owner.id()),
                user_id: Set(Some(user.id)),
                address: Set(None),
                alerts: Set(alerts),
                summary: Set(summary),
            });
        }
    }
    for address in alert_extra.union(&summary_extra) {
        rows.push(mail_recipient::ActiveModel {
            id: Set(Uuid::new_v4()),
            owner_id: Set(owner.id()),
            user_id: Set(None),
            address: Set(Some(address.clone())),
            alerts: Set(alert_extra.contains(address)),
            summary: Set(summary_extra.contains(address)),
        });
    }
    let transaction = db.begin().await?;
    mail_recipient::Entity::delete_many()
        .filter(mail_recipient::Column::OwnerId.eq(owner.id()))
        .exec(&transaction)
        .await?;
    if !rows.is_empty() {
        mail_recipient::Entity::insert_many(rows)
            .exec_without_returning(&transaction)
            .await?;
    }
    mail_recipient_set::Entity::delete_by_id(owner.id())
        .exec(&transaction)
        .await?;
    mail_recipient_set::Entity::insert(mail_recipient_set::ActiveModel {
        owner_id: Set(owner.id()),
        owner_kind: Set(owner.kind().into()),
        updated_at: Set(clock.now()),
        updated_by: Set(Some(access.email.clone())),
    })
    .exec_without_returning(&transaction)
    .await?;
    let subject = match owner {
        Owner::Customer(_) => "Alert e-mail recipients",
        Owner::Partner(_) => "Partner alert e-mail recipients",
    };
    audit::record(
        &transaction,
        clock,
        access.into(),
        audit::Event {
            owner: audit_owner,
            action: "mail_recipients_changed",
            subject,
            detail: format!(
                "alerts: {}; daily summary: {}",
                describe(&users, &alert_users, &alert_extra),
                describe(&users, &summary_users, &summary_extra)
            ),
        },
    )
    .await?;
    transaction.commit().await?;
    Ok(())
}

fn describe(
    users: &[console_user::Model],
    ticked: &HashSet<Uuid>,
    extra: &BTreeSet<String>,
) -> String {
    let names: Vec<&str> = users
        .iter()
        .filter(|u| ticked.contains(&u.id))
        .map(|u| u.email.as_str())
        .chain(extra.iter().map(String::as_str))
        .collect();
    if names.is_empty() {
        "nobody".into()
    } else {
        names.join(", ")
    }
}

/// Saves the customer's set (not read-only users).
pub async fn save_for_customer(
    db: &DatabaseConnection,
    clock: &dyn Clock,
    access: &Access,
    scope: &CustomerScope,
    form: &RecipientsForm,
) -> Result<(), AccountError> {
    scope.require_change()?;
    save(
        db,
        clock,
        access,
        Owner::Customer(scope.id()),
        audit::Owner::Customer(scope.id()),
        form,
    )
    .await
}

/// Saves the set of the signed-in administrator's own partner.
pub async fn save_for_partner(
    db: &DatabaseConnection,
    clock: &dyn Clock,
    access: &Access,
    form: &RecipientsForm,
) -> Result<(), AccountError> {
    let partner = access.require_partner_admin()?;
    save(
        db,
        clock,
        access,
        Owner::Partner(partner),
        audit::Owner::Partner(partner),
        form,
    )
    .await
}

/// The addresses of one set for `purpose` (the defaults when nothing was chosen).
async fn set_addresses(
    db: &impl ConnectionTrait,
    owner: Owner,
    purpose: Purpose,
) -> Result<Vec<String>, sea_orm::DbErr> {
    let users = owner_users(db, owner).await?;
    let chosen = mail_recipient_set::Entity::find_by_id(owner.id())
        .one(db)
        .await?
        .is_some();
    if !chosen {
        return Ok(match purpose {
            Purpose::Alerts => users
                .into_iter()
                .filter(is_admin)
                .map(|u| u.email)
                .collect(),
            Purpose::Summary => Vec::new(),
        });
    }
    let emails: HashMap<Uuid, String> = users.into_iter().map(|u| (u.id, u.email)).collect();
    let rows = mail_recipient::Entity::find()
        .filter(mail_recipient::Column::OwnerId.eq(owner.id()))
        .all(db)
        .await?;
    Ok(rows
        .into_iter()
        .filter(|row| match purpose {
            Purpose::Alerts => row.alerts,
            Purpose::Summary => row.summary,
        })
        // A user since removed or disabled is simply no longer mailed.
        .filter_map(|row| match row.user_id {
            Some(user) => emails.get(&user).cloned(),
            None => row.address,
        })
        .collect())
}

/// `partner` and every partner above it, nearest first.
async fn partner_chain(
    db: &impl ConnectionTrait,
    partner: Uuid,
) -> Result<Vec<Uuid>, sea_orm::DbErr> {
    let mut chain = Vec::new();
    let mut next = Some(partner);
    while let Some(id) = next {
        if chain.contains(&id) {
            break;
        }
        chain.push(id);
        next = partner::Entity::find_by_id(id)
            .one(db)
            .await?
            .and_then(|p| p.parent_id);
    }
    Ok(chain)
}

/// Everyone who gets an alert of `customer` (its own set and those of the partners above it),
/// each address once. `None` is the installation itself: the top-level partners' sets.
pub async fn alert_addresses(
    db: &impl ConnectionTrait,
    customer: Option<CustomerId>,
) -> Result<Vec<String>, sea_orm::DbErr> {
    let mut owners = Vec::new();
    match customer {
        Some(id) => {
            let Some(row) = customer::Entity::find_by_id(id.0).one(db).await? else {
                return Ok(Vec::new());
            };
            owners.push(Owner::Customer(id));
            for partner in partner_chain(db, row.partner_id).await? {
                owners.push(Owner::Partner(PartnerId(partner)));
            }
        }
        None => {
            for top in partner::Entity::find()
                .filter(partner::Column::ParentId.is_null())
                .all(db)
                .await?
            {
                owners.push(Owner::Partner(PartnerId(top.id)));
            }
        }
    }
    let mut seen = BTreeSet::new();
    for owner in owners {
        seen.extend(set_addresses(db, owner, Purpose::Alerts).await?);
    }
    Ok(seen.into_iter().collect())
}

/// Every set with someone chosen for the daily summary, with their addresses.
pub async fn summary_sets(
    db: &impl ConnectionTrait,
) -> Result<Vec<(Owner, Vec<String>)>, sea_orm::DbErr> {
    let owners: BTreeSet<Uuid> = mail_recipient::Entity::find()
        .filter(mail_recipient::Column::Summary.eq(true))
        .all(db)
        .await?
        .into_iter()
        .map(|row| row.owner_id)
        .collect();
    let mut sets = Vec::new();
    for id in owners {
        let Some(set) = mail_recipient_set::Entity::find_by_id(id).one(db).await? else {
            continue;
        };
        let owner = match set.owner_kind.as_str() {
            "customer" => Owner::Customer(CustomerId(id)),
            _ => Owner::Partner(PartnerId(id)),
        };
        let addresses = set_addresses(db, owner, Purpose::Summary).await?;
        if !addresses.is_empty() {
            sets.push((owner, addresses));
        }
    }
    Ok(sets)
}
