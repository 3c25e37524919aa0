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
