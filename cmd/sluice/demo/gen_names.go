package demo

// The vocabularies of the synthetic world. They are fixed lists: changing one
// changes every generated row, so append-only edits are not enough to keep a
// seed's data stable — treat them as part of the seed.

type district struct {
	name string
	code string // administrative division code used in IDs and credit codes
	// weight is the share of the city's population living there.
	weight int
	// lowIncomeBonus raises the share of allowance recipients, in permille:
	// the rural county has more households on the allowance.
	lowIncomeBonus int
}

var districts = []district{
	{"城东区", "630102", 22, 0},
	{"城中区", "630103", 18, 0},
	{"城西区", "630104", 20, 0},
	{"城北区", "630105", 19, 20},
	{"湟中区", "630122", 21, 50},
}

// outsideAreas are address codes of places outside the city, for people who
// live here but were registered at birth elsewhere (migrants, people insured
// here but registered in another city).
var outsideAreas = []string{
	"630121", // 大通回族土族自治县
	"632123", // 乐都区
	"632126", // 互助土族自治县
	"632221", // 门源回族自治县
	"622901", // 临夏市
	"620102", // 兰州市城关区
	"640104", // 银川市兴庆区
	"510104", // 成都市锦江区
	"410102", // 郑州市中原区
	"610113", // 西安市雁塔区
	"540102", // 拉萨市城关区
	"650102", // 乌鲁木齐市天山区
}

type weighted struct {
	value  string
	weight int
}

// surnames are weighted roughly by their frequency in the north-west,
// where 马 is unusually common.
var surnames = []weighted{
	{"王", 72}, {"李", 70}, {"张", 66}, {"刘", 53}, {"陈", 44}, {"马", 40},
	{"杨", 31}, {"赵", 20}, {"黄", 19}, {"周", 18}, {"吴", 17}, {"徐", 14},
	{"孙", 13}, {"胡", 12}, {"朱", 11}, {"高", 11}, {"林", 10}, {"何", 10},
	{"郭", 10}, {"罗", 9}, {"韩", 9}, {"祁", 8}, {"冶", 6}, {"鲁", 6},
	{"魏", 6}, {"宋", 6}, {"郑", 6}, {"谢", 5}, {"唐", 5}, {"许", 5},
	{"邓", 5}, {"冯", 5}, {"曹", 4}, {"彭", 4}, {"曾", 4}, {"萧", 3},
	{"田", 4}, {"董", 4}, {"潘", 3}, {"袁", 3}, {"蔡", 3}, {"蒋", 3},
	{"余", 3}, {"于", 3}, {"杜", 3}, {"叶", 3}, {"程", 3}, {"苏", 3},
	{"白", 3}, {"任", 3}, {"姚", 2}, {"卢", 2}, {"才", 2}, {"索", 2},
	{"拉", 1}, {"欧阳", 1}, {"司马", 1},
}

var givenMale = []string{
	"伟", "强", "磊", "军", "勇", "杰", "涛", "斌", "超", "明", "刚", "平", "辉", "鹏",
	"华", "飞", "鑫", "波", "宁", "海", "峰", "建", "国", "文", "志", "俊", "晨", "浩",
	"宇", "博", "成", "福", "德", "祥", "林", "龙", "青", "山", "学", "忠",
}

var givenFemale = []string{
	"芳", "娜", "敏", "静", "丽", "艳", "娟", "霞", "燕", "玲", "桂", "英", "秀", "兰",
	"萍", "红", "梅", "莉", "琳", "婷", "雪", "慧", "洁", "欣", "悦", "倩", "颖", "佳",
	"晶", "琴", "云", "凤", "花", "美", "瑶", "梦", "雯", "春", "月", "珍",
}

// phonePrefixes are mobile number segments of the three carriers.
var phonePrefixes = []string{
	"130", "131", "132", "133", "134", "135", "136", "137", "138", "139",
	"150", "151", "152", "153", "155", "156", "157", "158", "159",
	"180", "181", "182", "183", "185", "186", "187", "188", "189",
}

type industry struct {
	name     string // GB/T 4754 section name
	weight   int
	suffixes []string // business descriptions that fit the section
}

var industries = []industry{
	{"批发和零售业", 30, []string{"商贸", "贸易", "百货", "商行", "超市"}},
	{"住宿和餐饮业", 12, []string{"餐饮管理", "酒店管理", "牛肉面馆", "清真餐饮"}},
	{"建筑业", 10, []string{"建筑工程", "建设工程", "装饰工程", "市政工程"}},
	{"制造业", 9, []string{"机械制造", "食品", "建材", "藏毯织造", "乳制品"}},
	{"租赁和商务服务业", 9, []string{"商务咨询", "企业管理", "设备租赁", "广告"}},
	{"信息传输、软件和信息技术服务业", 7, []string{"信息技术", "网络科技", "软件开发", "数据服务"}},
	{"交通运输、仓储和邮政业", 7, []string{"物流", "运输", "仓储", "货运"}},
	{"农、林、牧、渔业", 6, []string{"农牧业开发", "种养殖", "生态农业", "牦牛养殖"}},
	{"科学研究和技术服务业", 4, []string{"科技", "检测技术", "生物科技", "工程技术"}},
	{"文化、体育和娱乐业", 3, []string{"文化传媒", "文化旅游", "体育发展", "影视"}},
	{"居民服务、修理和其他服务业", 3, []string{"家政服务", "汽车修理", "物业服务", "保洁服务"}},
}

// brandChars build two-character trade names (字号).
var brandChars = []string{
	"恒", "达", "鑫", "源", "华", "泰", "盛", "隆", "宏", "发", "金", "瑞", "祥", "和",
	"丰", "昌", "兴", "通", "安", "康", "福", "裕", "嘉", "顺", "德", "信", "诚", "远",
	"新", "天", "高", "原", "雪", "峰", "昆", "仑", "青", "湟", "河", "湖", "聚", "宝",
	"正", "元", "汇", "润", "博", "创", "东", "西", "柴", "夏", "都", "明", "凯", "旺",
}

var orgForms = []weighted{{"有限公司", 70}, {"有限责任公司", 25}, {"股份有限公司", 5}}

var enterpriseStatuses = []weighted{{"存续", 55}, {"在业", 30}, {"吊销", 8}, {"注销", 7}}

var offenses = []weighted{
	{"危险驾驶罪", 26}, {"盗窃罪", 22}, {"诈骗罪", 10}, {"故意伤害罪", 9},
	{"交通肇事罪", 7}, {"寻衅滋事罪", 6}, {"开设赌场罪", 4}, {"帮助信息网络犯罪活动罪", 4},
	{"非法吸收公众存款罪", 3}, {"抢劫罪", 3}, {"合同诈骗罪", 2}, {"拒不支付劳动报酬罪", 2},
	{"虚开增值税专用发票罪", 1}, {"非法占用农用地罪", 1},
}
