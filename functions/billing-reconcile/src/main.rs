shared::main!(worker, billing_reconcile::Reconciler);
