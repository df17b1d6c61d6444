shared::main!(events, authorizer::FUNCTION, authorizer::handle);
