shared::main!(events, migrate::FUNCTION, migrate::handle);
