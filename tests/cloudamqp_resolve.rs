//! Instance UUIDs (`providerid`) to integer ids, through a cached instance list.

mod cloudamqp_support;

use std::time::Duration;

use cloudamqp_autoscaler::cloudamqp::{InstanceResolver, ResolveError};
use cloudamqp_autoscaler::fake::{SeedInstance, Timeline};
use cloudamqp_autoscaler::instance::InstanceRef;
use cloudamqp_support::{Harness, ID};
use uuid::Uuid;

fn uuid_of(h: &Harness, id: u64) -> InstanceRef {
    InstanceRef::Uuid(h.fake.instance(id).unwrap().providerid)
}

#[tokio::test]
async fn an_integer_id_passes_through_without_a_call() {
    let h = Harness::new(Timeline::instant()).await;
    let resolver = InstanceResolver::new(h.client.clone());
    assert_eq!(resolver.resolve(InstanceRef::Id(7)).await, Ok(7));
    assert!(h.fake.requests().is_empty());
}

#[tokio::test]
async fn known_uuids_cost_one_list_call_for_many_lookups() {
    let h = Harness::new(Timeline::instant()).await;
    h.fake
        .add_instance(SeedInstance::new(2, "staging", "lemur"));
    let resolver = InstanceResolver::new(h.client.clone());
    assert_eq!(resolver.resolve(uuid_of(&h, ID)).await, Ok(ID));
    assert_eq!(resolver.resolve(uuid_of(&h, ID)).await, Ok(ID));
    assert_eq!(resolver.resolve(uuid_of(&h, 2)).await, Ok(2));
    assert_eq!(h.requests_to("GET", "/instances").len(), 1);
    let known = resolver.known(ID).unwrap();
    assert_eq!(known.name, "prod");
    assert_eq!(
        known.providerid.as_deref(),
        Some(h.fake.instance(ID).unwrap().providerid.to_string().as_str())
    );
    assert!(resolver.known(99).is_none());
}

#[tokio::test]
async fn a_miss_refreshes_the_list_and_finds_a_new_instance() {
    let h = Harness::new(Timeline::instant()).await;
    let resolver = InstanceResolver::new(h.client.clone());
    assert_eq!(resolver.resolve(uuid_of(&h, ID)).await, Ok(ID));
    h.fake.add_instance(SeedInstance::new(3, "new", "bunny-1"));
    assert_eq!(resolver.resolve(uuid_of(&h, 3)).await, Ok(3));
    assert_eq!(h.requests_to("GET", "/instances").len(), 2);
}

#[tokio::test]
async fn an_unknown_uuid_is_typed_and_repeated_misses_do_not_list_every_time() {
    let h = Harness::new(Timeline::instant()).await;
    let resolver = InstanceResolver::new(h.client.clone());
    let stranger = Uuid::parse_str("0b0e7a2c-4d1f-4c53-9a3e-2f7c7d1e9b11").unwrap();
    for _ in 0..5 {
        assert_eq!(
            resolver.resolve(InstanceRef::Uuid(stranger)).await,
            Err(ResolveError::InstanceUnknown { uuid: stranger })
        );
    }
    assert_eq!(h.requests_to("GET", "/instances").len(), 1);
    // A known instance still resolves from the cache meanwhile.
    assert_eq!(resolver.resolve(uuid_of(&h, ID)).await, Ok(ID));
    assert_eq!(h.requests_to("GET", "/instances").len(), 1);
    // Once the verdict is old, a miss may look again.
    h.clock.advance(Duration::from_secs(31));
    assert!(resolver.resolve(InstanceRef::Uuid(stranger)).await.is_err());
    assert_eq!(h.requests_to("GET", "/instances").len(), 2);
    let message = ResolveError::InstanceUnknown { uuid: stranger }.to_string();
    assert!(message.contains(&stranger.to_string()), "{message}");
}

#[tokio::test]
async fn a_failing_list_is_an_api_error_not_unknown() {
    let h = Harness::with(Timeline::instant(), |s| s.api_key = Some("wrong".into())).await;
    let resolver = InstanceResolver::new(h.client.clone());
    let err = resolver
        .resolve(InstanceRef::Uuid(Uuid::nil()))
        .await
        .unwrap_err();
    assert!(matches!(err, ResolveError::Api(_)), "{err:?}");
}
