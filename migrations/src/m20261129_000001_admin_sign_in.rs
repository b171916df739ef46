//! Admin consent becomes two legs: consent, then the administrator's OpenID Connect sign-in to
//! the consented tenant. A pending request now also holds, for its second leg, the tenant that
//! consented, the nonce and the PKCE verifier. Pending requests live 15 minutes, so the table is
//! recreated rather than altered (SQLite adds one column per statement).

use sea_orm_migration::prelude::*;
use sea_orm_migration::schema::*;

#[derive(DeriveMigrationName)]
pub struct Migration;

#[derive(DeriveIden)]
enum ConsentRequests {
    Table,
    State,
    CustomerId,
    UserId,
    ExpiresAt,
    TenantId,
    Nonce,
    PkceVerifier,
}

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .drop_table(Table::drop().table(ConsentRequests::Table).to_owned())
            .await?;
        manager
            .create_table(
                Table::create()
                    .table(ConsentRequests::Table)
                    .col(string(ConsentRequests::State).primary_key())
                    .col(uuid(ConsentRequests::CustomerId))
                    .col(uuid(ConsentRequests::UserId))
                    .col(timestamp_with_time_zone(ConsentRequests::ExpiresAt))
                    .col(string_null(ConsentRequests::TenantId))
                    .col(string_null(ConsentRequests::Nonce))
                    .col(string_null(ConsentRequests::PkceVerifier))
                    .to_owned(),
            )
            .await
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .drop_table(Table::drop().table(ConsentRequests::Table).to_owned())
            .await?;
        manager
            .create_table(
                Table::create()
                    .table(ConsentRequests::Table)
                    .col(string(ConsentRequests::State).primary_key())
                    .col(uuid(ConsentRequests::CustomerId))
                    .col(uuid(ConsentRequests::UserId))
                    .col(timestamp_with_time_zone(ConsentRequests::ExpiresAt))
                    .to_owned(),
            )
            .await
    }
}
