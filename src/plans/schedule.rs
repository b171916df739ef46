//! Daily start times. The day has 96 fifteen-minute slots; a new plan goes to the slot whose
//! plans (of every customer of the installation) carry the least estimated load, and keeps it, so
//! each plan runs at the same time every day while the installation's work stays spread.
//! `rebalance` reassigns every plan on request (`skyvault admin rebalance-schedule`).

use chrono::{DateTime, Duration, NaiveTime, TimeZone, Utc};
use sea_orm::sea_query::Expr;
use sea_orm::{ColumnTrait, ConnectionTrait, EntityTrait, QueryFilter, QuerySelect};

use super::entities::plan;

/// Minutes in one slot.
pub const SLOT_MINUTES: i32 = 15;
/// Slots in a day.
pub const SLOTS: usize = 96;

/// Load per slot, from plans' (start minute, estimated load).
pub fn slot_loads(plans: impl IntoIterator<Item = (i32, i64)>) -> [i64; SLOTS] {
    let mut loads = [0i64; SLOTS];
    for (minute, load) in plans {
        loads[slot_of(minute)] += load.max(0);
    }
    loads
}

/// The slot a start minute falls in (out-of-range minutes wrap around the day).
pub fn slot_of(minute: i32) -> usize {
    (minute.rem_euclid(24 * 60) / SLOT_MINUTES) as usize % SLOTS
}

/// The least-loaded slot (the earliest of equals).
pub fn least_loaded(loads: &[i64; SLOTS]) -> usize {
    loads
        .iter()
        .enumerate()
        .min_by_key(|(slot, load)| (**load, *slot))
        .map_or(0, |(slot, _)| slot)
}

/// Places loads one by one, each in the slot least loaded so far: what assigning plans as they
/// are created does. Returns each load's slot.
pub fn place_in_order(loads: &[i64]) -> Vec<usize> {
    let mut slots = [0i64; SLOTS];
    loads
        .iter()
        .map(|&load| {
            let slot = least_loaded(&slots);
            slots[slot] += load.max(0);
            slot
        })
        .collect()
}

/// Places all loads at once, largest first (what a rebalance does): the busiest slot then
/// exceeds the mean by at most the largest single load.
pub fn place_balanced(loads: &[i64]) -> Vec<usize> {
    let mut order: Vec<usize> = (0..loads.len()).collect();
    order.sort_by_key(|&i| std::cmp::Reverse(loads[i]));
    let mut slots = [0i64; SLOTS];
    let mut placed = vec![0; loads.len()];
    for i in order {
        let slot = least_loaded(&slots);
        slots[slot] += loads[i].max(0);
        placed[i] = slot;
    }
    placed
}

pub fn slot_start_minute(slot: usize) -> i32 {
    (slot % SLOTS) as i32 * SLOT_MINUTES
}

/// The first moment after `now` at `start_minute` past midnight UTC. A plan whose runs were
/// missed (the server was down) is due once, then moves here: never N times.
pub fn next_run_after(start_minute: i32, now: DateTime<Utc>) -> DateTime<Utc> {
    let minute = start_minute.rem_euclid(24 * 60);
    let time = NaiveTime::from_hms_opt((minute / 60) as u32, (minute % 60) as u32, 0)
        .unwrap_or(NaiveTime::MIN);
    let today = Utc.from_utc_datetime(&now.date_naive().and_time(time));
    if today > now {
        today
    } else {
        today + Duration::days(1)
    }
}

/// "02:15".
pub fn clock_time(start_minute: i32) -> String {
    let minute = start_minute.rem_euclid(24 * 60);
    format!("{:02}:{:02}", minute / 60, minute % 60)
}

/// What the plan's page says about when it runs.
pub fn schedule_sentence(start_minute: i32) -> String {
    format!(
        "Runs daily at {} UTC, chosen by Skyvault to spread load",
        clock_time(start_minute)
    )
}

/// The start minute for a new plan: the slot of the installation carrying the least estimated
/// load (the new plan's own load does not change which slot that is).
pub async fn assign_start_minute(db: &impl ConnectionTrait) -> Result<i32, sea_orm::DbErr> {
    let plans: Vec<(i32, i64)> = plan::Entity::find()
        .select_only()
        .column(plan::Column::StartMinute)
        .column(plan::Column::EstimatedLoad)
        .into_tuple()
        .all(db)
        .await?;
    Ok(slot_start_minute(least_loaded(&slot_loads(plans))))
}

/// Reassigns every plan's start time so the slots' loads are as even as possible; returns how
/// many plans moved. Each moved plan's next run is its new time after `now`.
pub async fn rebalance(
    db: &impl ConnectionTrait,
    now: DateTime<Utc>,
) -> Result<u64, sea_orm::DbErr> {
    let plans: Vec<(uuid::Uuid, i32, i64)> = plan::Entity::find()
        .select_only()
        .column(plan::Column::Id)
        .column(plan::Column::StartMinute)
        .column(plan::Column::EstimatedLoad)
        .into_tuple()
        .all(db)
        .await?;
    let loads: Vec<i64> = plans.iter().map(|p| p.2).collect();
    let placed = place_balanced(&loads);
    let mut moved = 0;
    for ((id, minute, _), slot) in plans.into_iter().zip(placed) {
        let start = slot_start_minute(slot);
        if start == minute {
            continue;
        }
        plan::Entity::update_many()
            .col_expr(plan::Column::StartMinute, Expr::value(start))
            .col_expr(
                plan::Column::NextRunAt,
                Expr::value(next_run_after(start, now)),
            )
            .filter(plan::Column::Id.eq(id))
            .exec(db)
            .await?;
        moved += 1;
    }
    Ok(moved)
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::{Rng, SeedableRng};

    fn busiest_over_mean(loads: &[i64], placed: &[usize]) -> f64 {
        let mut slots = [0i64; SLOTS];
        for (load, slot) in loads.iter().zip(placed) {
            slots[*slot] += load;
        }
        let mean = slots.iter().sum::<i64>() as f64 / SLOTS as f64;
        *slots.iter().max().unwrap() as f64 / mean
    }

    #[test]
    fn ten_thousand_random_plans_keep_the_busiest_slot_within_ten_percent_of_the_mean() {
        let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(12);
        // Plans of 1 to 500 items at 30 to 120 seconds an item: sizes vary 200-fold.
        let loads: Vec<i64> = (0..10_000)
            .map(|_| rng.random_range(1..=500i64) * rng.random_range(30..=120i64))
            .collect();
        let as_created = busiest_over_mean(&loads, &place_in_order(&loads));
        assert!(
            as_created <= 1.10,
            "as created: busiest/mean = {as_created}"
        );
        let rebalanced = busiest_over_mean(&loads, &place_balanced(&loads));
        eprintln!("busiest slot / mean: {as_created:.4} as created, {rebalanced:.4} rebalanced");
        assert!(
            rebalanced <= 1.10,
            "rebalanced: busiest/mean = {rebalanced}"
        );
        assert!(rebalanced <= as_created);
    }

    #[test]
    fn next_run_is_today_when_still_ahead_else_tomorrow_and_never_in_the_past() {
        let now = Utc.with_ymd_and_hms(2026, 11, 2, 9, 0, 0).unwrap();
        assert_eq!(
            next_run_after(135, now),
            Utc.with_ymd_and_hms(2026, 11, 3, 2, 15, 0).unwrap()
        );
        assert_eq!(
            next_run_after(600, now),
            Utc.with_ymd_and_hms(2026, 11, 2, 10, 0, 0).unwrap()
        );
        // Exactly at the start time: the run due now is the one being dispatched.
        assert_eq!(
            next_run_after(540, now),
            Utc.with_ymd_and_hms(2026, 11, 3, 9, 0, 0).unwrap()
        );
        assert_eq!(
            schedule_sentence(135),
            "Runs daily at 02:15 UTC, chosen by Skyvault to spread load"
        );
    }
}
