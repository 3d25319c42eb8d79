//! Will hold the mail server behind greyd (smtpd, queue, delivery, imapd, pop3d); built with the mta issues.
