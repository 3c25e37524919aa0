# `lockerfleet demo`（演示）：控制台之前和旁边终端上显示的内容。

demo-title = LockerFleet 演示
demo-addresses = { "  " }设备接入（MQTT，双向 TLS）：{ $mqtt }
    { "  " }HTTP API：                 http://{ $http }
    { "  " }管理员令牌：               { $token }
    { "  " }试试：curl -H "Authorization: Bearer $(cat { $token })" http://{ $http }/api/v1/devices
demo-history-writing = 正在写入最近 { $days } 天
demo-history-start = 历史数据：在今天的实时运行开始前写入最近 { $days } 天
demo-history-progress = 第 { $day }/{ $days } 天：预约 { $reserved } 次，拒绝 { $refused } 次
demo-history-up-to-date = 历史数据：已是最新（数据目录中已有）
demo-history-done = 历史数据：已模拟 { $days } 天，预约 { $reserved } 次（{ $refused } 次因无空闲箱格被拒），使用开箱码 { $codes } 次，输错 { $wrong } 次，工作人员开箱 { $staff } 次
demo-status = 设备在线 { $online }/{ $devices }（驿站设备 { $stations } 台）| 事件已存 { $events } 条，待回执 { $unreceipted } 条 | 箱格 { $boxes } 个：占用 { $occupied }，门开 { $open } | 远程开箱 { $opens } 次（已开箱 { $opened }，其他 { $other }，出错 { $errors }）中位数 { $p50 } 毫秒
demo-day = 预约 { $reserved } 次（拒绝 { $refused } 次）| 交件 { $dropped } 收件 { $collected } | 出件存入 { $deposited } 取件 { $picked_up } | 输错开箱码 { $wrong } 次 | 远程协助 { $helped } 次
demo-alarms = 告警：未消除 { $open } 条（已确认 { $acked } 条）[{ $kinds }]，已消除 { $cleared } 条
demo-stopping = 正在停止：先是办事群众，然后是代理程序，最后是服务器（排空、落盘）
demo-console-failed = 控制台出错：{ $error }
