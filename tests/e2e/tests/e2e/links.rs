//! The lattice's links, as wadm puts them: all of a component's links at once.

use futures::future::join_all;
use orders_e2e::{lattice_test, unique, Operator};

/// Twenty links of one (made-up) component, put at the same moment and then deleted at the same
/// moment, as wadm does when it deploys or replaces an application: the lattice keeps each link
/// put and forgets each link deleted. The host stores a component's links in one record; changed
/// without compare-and-swap, concurrent changes overwrote each other and links were lost
/// (16 of 20 kept, seen before the host's patch).
#[lattice_test]
async fn links_put_and_deleted_at_the_same_moment_are_all_kept_and_all_deleted(operator: Operator) {
    let source = unique("linked-at-once");
    let packages: Vec<(String, String)> = (0..20)
        .map(|n| (format!("test{n}"), "links".to_string()))
        .collect();

    join_all(
        packages
            .iter()
            .enumerate()
            .map(|(n, (namespace, package))| {
                let target = format!("target-{n}");
                let operator = &operator;
                let source = &source;
                async move {
                    operator
                        .put_link(source, &target, (namespace, package), "iface")
                        .await
                }
            }),
    )
    .await;
    let kept = operator.links_of(&source).await;
    assert_eq!(
        kept.len(),
        packages.len(),
        "every link put is kept: {kept:?}"
    );

    join_all(
        packages
            .iter()
            .map(|(namespace, package)| operator.delete_link(&source, (namespace, package))),
    )
    .await;
    let left = operator.links_of(&source).await;
    assert!(left.is_empty(), "every link deleted is gone: {left:?}");
}
