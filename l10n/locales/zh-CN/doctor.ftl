# `device-agent doctor`（设备自检）：柜前技术人员阅读的内容（控制台的自检报告也用）。

doctor-pass = 通过
doctor-fail = 失败
doctor-name-config = 配置
doctor-name-certificate = 证书
doctor-name-clock = 时钟
doctor-name-server = 服务器
doctor-name-board = 锁控板
doctor-name-disk = 磁盘
doctor-summary-failed = { $total } 项检查中有 { $failed } 项失败

doctor-config-ok = 设备 { $id }，服务器 { $server }
doctor-cert-expired = { $file } 已过期 { $days } 天；请重新签发（`fleet-certs issue --force`）
doctor-cert-valid = { $file } 还有 { $days } 天有效
doctor-cert-valid-renewing = { $file } 还有 { $days } 天有效（需要续期：代理程序会向服务器申请新证书）
doctor-clock-unset = 时钟显示为 1970 年后 { $now } 毫秒，早于 2024 年：请校时（NTP）
doctor-clock-unlearned = 尚未获得时差（代理程序未在此运行过）；收到第一个回执时再检查
doctor-clock-held = 已设置（晚于 2024 年）；运行中的代理程序占用发件箱，它最近获得的时差见服务器的设备页
doctor-clock-off-last = 上次连接时比服务器{ $direction ->
    [behind] 慢
   *[ahead] 快
} { $secs } 秒；代理程序以服务器时间为准，但请校正本机时钟（NTP）
doctor-clock-near-last = 上次连接时与服务器相差 { $ms } 毫秒以内
doctor-clock-off = 比服务器{ $direction ->
    [behind] 慢
   *[ahead] 快
} { $secs } 秒；代理程序以服务器时间为准，但请校正本机时钟（NTP）
doctor-clock-near = 与服务器相差 { $ms } 毫秒以内
doctor-clock-outbox = 无法从发件箱读取：{ $error }
doctor-server-untried = 没有可用证书，未尝试连接
doctor-server-unresolved = { $target }：域名无法解析
doctor-server-unreachable = { $target }：无法连接：{ $error }
doctor-server-silent = { $target }：5 秒内无应答
doctor-server-bad-name = { $host }：不是有效的服务器名：{ $error }
doctor-server-tls-failed = { $target }：TLS 失败：{ $error }（证书已吊销、已过期或来自其他 CA？）
doctor-server-tls-slow = { $target }：TLS 握手 5 秒内未完成
doctor-server-ok = { $target } 可达；已接受本信包箱的证书
doctor-server-refused = { $target } 拒绝了本信包箱的证书：{ $error }
doctor-server-closed = { $target } 在 TLS 握手后关闭了连接
doctor-board-ok = 全部 { $count } 个箱格均有应答
doctor-boxes = { $count ->
   *[other] 箱格 { $list }
}
doctor-disk-create = 无法创建 { $dir }：{ $error }
doctor-disk-write = 无法写入 { $dir }：{ $error }
doctor-disk-free = { $dir } 剩余 { $mib } MiB
doctor-disk-low = { $dir } 剩余 { $mib } MiB：发件箱至少需要 64 MiB
doctor-disk-unknown = 无法读取 { $dir } 的剩余空间：{ $error }
