# `device-agent doctor`: what a technician at the cabinet reads (and the console's doctor
# report). Check names are padded to one column; keep them short.

doctor-pass = PASS
doctor-fail = FAIL
doctor-name-config = config
doctor-name-certificate = certificate
doctor-name-clock = clock
doctor-name-server = server
doctor-name-board = lock board
doctor-name-disk = disk
doctor-summary-failed = { $failed } of { $total } checks failed

doctor-config-ok = device { $id }, server { $server }
doctor-cert-expired = { $file } expired { $days } days ago; issue a new one (`fleet-certs issue --force`)
doctor-cert-valid = { $file } valid for { $days } more days
doctor-cert-valid-renewing = { $file } valid for { $days } more days (renewal due: the agent asks the server for a new one)
doctor-clock-unset = the clock says { $now } ms since 1970, before 2024: set it (NTP)
doctor-clock-unlearned = no offset learned yet (the agent has not run here); checked again at the first receipt
doctor-clock-held = set (after 2024); the running agent holds the outbox, so the offset it last learned is on the server's device page
doctor-clock-off-last = { $secs } s { $direction ->
    [behind] behind
   *[ahead] ahead of
} the server's when last connected; the agent judges on the server's time, but fix this clock (NTP)
doctor-clock-near-last = within { $ms } ms of the server's when last connected
doctor-clock-off = { $secs } s { $direction ->
    [behind] behind
   *[ahead] ahead of
} the server's; the agent judges on the server's time, but fix this clock (NTP)
doctor-clock-near = within { $ms } ms of the server's
doctor-clock-outbox = the outbox cannot say: { $error }
doctor-server-untried = not tried without a usable certificate
doctor-server-unresolved = { $target }: the name does not resolve
doctor-server-unreachable = { $target }: cannot connect: { $error }
doctor-server-silent = { $target }: no answer within 5 s
doctor-server-bad-name = { $host }: not a server name: { $error }
doctor-server-tls-failed = { $target }: TLS failed: { $error } (a certificate revoked, expired or from another CA?)
doctor-server-tls-slow = { $target }: TLS did not finish within 5 s
doctor-server-ok = { $target } reachable; it accepted this cabinet's certificate
doctor-server-refused = { $target } refused this cabinet's certificate: { $error }
doctor-server-closed = { $target } closed the connection after TLS
doctor-board-ok = all { $count } boxes answered
doctor-boxes = { $count ->
    [one] box { $list }
   *[other] boxes { $list }
}
doctor-disk-create = cannot create { $dir }: { $error }
doctor-disk-write = cannot write in { $dir }: { $error }
doctor-disk-free = { $mib } MiB free in { $dir }
doctor-disk-low = { $mib } MiB free in { $dir }: at least 64 MiB needed for the outbox
doctor-disk-unknown = cannot read free space of { $dir }: { $error }
