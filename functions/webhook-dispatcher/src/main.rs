shared::main!(worker, webhook_dispatcher::Dispatcher);
