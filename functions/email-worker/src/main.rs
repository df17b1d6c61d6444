shared::main!(worker, email_worker::Mailer);
