shared::main!(worker, usage_worker::UsageWorker);
