shared::main!(worker, billing_worker::BillingWorker);
