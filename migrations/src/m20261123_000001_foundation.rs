//! Tenancy and accounts: partners own customers (and sub-partners), customers own their console
//! users; sessions, sign-in failures and one-time instance state live beside them.

use sea_orm_migration::prelude::*;
use sea_orm_migration::schema::*;

#[derive(DeriveMigrationName)]
pub struct Migration;

#[derive(DeriveIden)]
enum Partners {
    Table,
    Id,
    ParentId,
    Name,
    CreatedAt,
}

#[derive(DeriveIden)]
enum Customers {
    Table,
    Id,
    PartnerId,
    Name,
    Disabled,
    CreatedAt,
}

#[derive(DeriveIden)]
enum ConsoleUsers {
    Table,
    Id,
    Email,
    DisplayName,
    PasswordHash,
    Role,
    PartnerId,
    CustomerId,
    Disabled,
    CreatedAt,
}

#[derive(DeriveIden)]
enum Sessions {
    Table,
    KeyHash,
    UserId,
    State,
    ExpiresAt,
}

#[derive(DeriveIden)]
enum SigninFailures {
    Table,
    Id,
    Account,
    Address,
    At,
}

#[derive(DeriveIden)]
enum InstanceState {
    Table,
    Key,
    Value,
}

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .create_table(
                Table::create()
                    .table(Partners::Table)
                    .col(uuid(Partners::Id).primary_key())
                    .col(uuid_null(Partners::ParentId))
                    .col(string(Partners::Name))
                    .col(timestamp_with_time_zone(Partners::CreatedAt))
                    .foreign_key(
                        ForeignKey::create()
                            .from(Partners::Table, Partners::ParentId)
                            .to(Partners::Table, Partners::Id),
                    )
                    .to_owned(),
            )
            .await?;
        manager
            .create_table(
                Table::create()
                    .table(Customers::Table)
                    .col(uuid(Customers::Id).primary_key())
                    .col(uuid(Customers::PartnerId))
                    .col(string(Customers::Name))
                    .col(boolean(Customers::Disabled).default(false))
                    .col(timestamp_with_time_zone(Customers::CreatedAt))
                    .foreign_key(
                        ForeignKey::create()
                            .from(Customers::Table, Customers::PartnerId)
                            .to(Partners::Table, Partners::Id),
                    )
                    .to_owned(),
            )
            .await?;
        manager
            .create_index(
                Index::create()
                    .name("customers_partner")
                    .table(Customers::Table)
                    .col(Customers::PartnerId)
                    .to_owned(),
            )
            .await?;
        manager
            .create_table(
                Table::create()
                    .table(ConsoleUsers::Table)
                    .col(uuid(ConsoleUsers::Id).primary_key())
                    .col(string_uniq(ConsoleUsers::Email))
                    .col(string(ConsoleUsers::DisplayName))
                    .col(string(ConsoleUsers::PasswordHash))
                    .col(string(ConsoleUsers::Role))
                    .col(uuid_null(ConsoleUsers::PartnerId))
                    .col(uuid_null(ConsoleUsers::CustomerId))
                    .col(boolean(ConsoleUsers::Disabled).default(false))
                    .col(timestamp_with_time_zone(ConsoleUsers::CreatedAt))
                    .foreign_key(
                        ForeignKey::create()
                            .from(ConsoleUsers::Table, ConsoleUsers::PartnerId)
                            .to(Partners::Table, Partners::Id),
                    )
                    .foreign_key(
                        ForeignKey::create()
                            .from(ConsoleUsers::Table, ConsoleUsers::CustomerId)
                            .to(Customers::Table, Customers::Id),
                    )
                    .to_owned(),
            )
            .await?;
        manager
            .create_table(
                Table::create()
                    .table(Sessions::Table)
                    .col(string(Sessions::KeyHash).primary_key())
                    .col(uuid_null(Sessions::UserId))
                    .col(text(Sessions::State))
                    .col(timestamp_with_time_zone(Sessions::ExpiresAt))
                    .to_owned(),
            )
            .await?;
        manager
            .create_index(
                Index::create()
                    .name("sessions_user")
                    .table(Sessions::Table)
                    .col(Sessions::UserId)
                    .to_owned(),
            )
            .await?;
        manager
            .create_table(
                Table::create()
                    .table(SigninFailures::Table)
                    .col(pk_auto(SigninFailures::Id))
                    .col(string(SigninFailures::Account))
                    .col(string(SigninFailures::Address))
                    .col(timestamp_with_time_zone(SigninFailures::At))
                    .to_owned(),
            )
            .await?;
        for (name, column) in [
            ("signin_failures_account", SigninFailures::Account),
            ("signin_failures_address", SigninFailures::Address),
        ] {
            manager
                .create_index(
                    Index::create()
                        .name(name)
                        .table(SigninFailures::Table)
                        .col(column)
                        .col(SigninFailures::At)
                        .to_owned(),
                )
                .await?;
        }
        manager
            .create_table(
                Table::create()
                    .table(InstanceState::Table)
                    .col(string(InstanceState::Key).primary_key())
                    .col(text(InstanceState::Value))
                    .to_owned(),
            )
            .await
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        for table in [
            InstanceState::Table.into_iden(),
            SigninFailures::Table.into_iden(),
            Sessions::Table.into_iden(),
            ConsoleUsers::Table.into_iden(),
            Customers::Table.into_iden(),
            Partners::Table.into_iden(),
        ] {
            manager
                .drop_table(Table::drop().table(table).to_owned())
                .await?;
        }
        Ok(())
    }
}
