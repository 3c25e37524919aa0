# 办事群众收到的内置短信（管理员可按站点和语言自行编写：PUT /api/v1/sms-templates）。每条都必须保留 { $code }。

sms-dropoff = 【政务服务】您办件号 { $case } 的交件开箱码为 { $code }，请于 { $until } 前到 { $site } 信包箱 { $cabinet } 第 { $box_no } 号箱格交件。
sms-supplement = 【政务服务】您办件号 { $case } 的补交材料开箱码为 { $code }，请于 { $until } 前到 { $site } 信包箱 { $cabinet } 第 { $box_no } 号箱格投递补交材料。
sms-pickup = 【政务服务】您办件号 { $case } 的证照已存入 { $site } 信包箱 { $cabinet } 第 { $box_no } 号箱格，取件码 { $code }，{ $until } 前有效。
sms-reminder = 【政务服务】您办件号 { $case } 的证照在 { $site } 信包箱 { $cabinet } 第 { $box_no } 号箱格等您领取，{ $until } 前有效，请使用已收到的取件码。

# 值班人员收到的告警短信（设备本身的告警 $box_no 为 "none"）。
sms-alarm = { $escalated ->
    [yes] 【已升级，无人确认】
   *[no] {""}
}【LockerFleet】{ $severity }告警：{ $device }{ $box_no ->
    [none] {""}
   *[other] { " " }{ $box_no } 号箱格
} { $kind }（{ $site }）：{ $evidence }{ $cleared ->
    [yes] （现已消除）
   *[no] {""}
}。告警编号 { $id }
