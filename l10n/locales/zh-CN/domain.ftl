# 领域词汇：状态、类型和业务流程的中文说法（控制台、通知等处通用）。按线上取值选择；未知取值原样显示。

domain-site-kind = { $kind ->
    [service_hall] 大厅
    [enterprise_cluster] 聚集区
    [station] 驿站
    [community] 社区
   *[other] { $kind }
}
domain-box-state = { $state ->
    [free] 空闲
    [reserved] 已预约
    [occupied] 占用
    [out_of_service] 停用
   *[other] { $state }
}
domain-severity = { $severity ->
    [critical] 紧急
    [major] 重要
    [minor] 次要
    [warning] 提示
   *[other] { $severity }
}
domain-alarm-state = { $state ->
    [active] 未处理
    [acknowledged] 已确认
    [cleared] 已消除
    [suppressed] 已抑制
    [escalated] 已升级
   *[other] { $state }
}
domain-alarm-kind = { $kind ->
    [door_left_open] 箱门未关
    [forced_open] 箱门被撬
    [lock_jam] 锁卡住
    [sensor_fault] 传感器故障
    [lock_bus_unreachable] 锁控板无应答
    [on_battery] 电池供电
    [tamper] 被拆动
    [keypad_locked] 键盘已锁定
    [paper_low] 纸张将尽
    [paper_out] 缺纸
    [paper_jam] 卡纸
    [toner_low] 墨粉不足
    [needs_service] 需要维护
    [device_offline] 设备离线
    [clock_skew] 时钟偏差
    [events_lost] 事件丢失
   *[other] { $kind }
}
domain-flow = { $flow ->
    [dropoff] 交件
    [supplement] 容缺补件
    [pickup] 取件
   *[other] { $flow }
}
domain-item-state = { $state ->
    [reserved] 已预约
    [awaiting_deposit] 待存入
    [in_box] 在箱格
    [collected] 已收件
    [picked_up] 已取件
    [expired] 已过期
    [overdue] 已逾期
    [retrieved] 已取回
    [cancelled] 已取消
   *[other] { $state }
}
domain-command-status = { $status ->
    [queued] 排队中
    [sent] 已发送
    [delivered] 已送达
    [opened] 已开箱
    [already_open] 原已打开
    [jammed] 卡住
    [failed] 失败
    [expired] 已过期
   *[other] { $status }
}
domain-deployment-state = { $state ->
    [running] 进行中
    [paused] 已暂停
    [halted] 已中止
    [completed] 已完成
    [cancelled] 已取消
   *[other] { $state }
}
domain-rollout-state = { $state ->
    [pending] 待发
    [offered] 已下发
    [downloading] 下载中
    [downloaded] 已下载
    [waiting] 等待中
    [installing] 安装中
    [confirming] 确认中
    [succeeded] 成功
    [failed] 失败
    [rolled_back] 已回退
    [rolling_back] 回退中
   *[other] { $state }
}
domain-role = { $role ->
    [viewer] 查看者
    [platform] 服务平台
    [operator] 操作员
    [admin] 管理员
   *[other] { $role }
}
domain-occupancy = { $state ->
    [occupied] 有物
   *[empty] 空
}
domain-profile = { $profile ->
    [locker] 信包箱
    [kiosk] 自助服务终端
    [tax_machine] 自助办税终端
    [printer] 打印机
   *[other] { $profile }
}
# 故障和告警的依据，按 protocol::evidence 代码；$a、$b 为其取值。
domain-evidence = { $code ->
    [occupancy_again] 占用传感器又显示为{ $a }
    [occupancy_changed] 箱门一直关闭且未给锁通电，占用传感器却变为{ $a }
    [door_opened_judged] 箱门已打开；重新判断占用状态
    [forced_open] 箱门打开前 { $a } 毫秒内没有开锁脉冲
    [door_closed] 箱门已关闭
    [door_closed_at_start] 启动时发现箱门已关闭
    [door_open_for] 箱门已打开 { $a } 秒
    [jam_no_change] 开锁脉冲后 { $a } 毫秒内门磁无变化
    [pulse_opened] 下一次开锁脉冲打开了箱门
    [bus_silent] 连续 { $a } 次轮询无应答（{ $b }）
    [bus_back] 锁控板恢复应答
    [mains_lost] 市电中断；正在使用电池
    [mains_back] 市电已恢复
    [tamper_open] 机箱防拆开关被打开
    [tamper_closed] 防拆开关已复位
    [station_clears] { $a }不再报告{ $b }
    [station_reports] { $a }报告{ $b }
    [keypad_locked] 多次输错开箱码；键盘锁定至 { $a }（代理程序时钟）
    [keypad_unlocked] 键盘锁定已解除
    [offline] 离线超过 { $a } 秒（{ $b }）
    [heartbeat_lost] 会话在线但 { $a } 秒无心跳（代理程序卡住或链路半断）
    [back_online] 已恢复在线：会话在线且心跳正常
    [clock_off] 信包箱时钟比服务器{ $b ->
        [behind] 慢
       *[ahead] 快
    } { $a }；开箱码和指令以服务器时间为准，但请校正其时钟（NTP）
    [clock_agrees] 信包箱时钟已与服务器一致
    [events_lost_restore] { $b } 台信包箱的 { $a } 条事件随恢复丢失：服务器确认接收后信包箱已删除这些事件，而备份早于此
    [events_lost] { $b } 台信包箱的 { $a } 条事件丢失：服务器曾确认接收，但其数据库中已没有这些事件
   *[other] { $a } { $b }
}
