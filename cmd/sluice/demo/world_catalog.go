package demo

import (
	sluice "github.com/sluice-gov/sluice"
)

// Department ids of the demo world, in the order they are generated.
const (
	DeptCivil  = "civil"
	DeptHealth = "health"
	DeptMarket = "market"
	DeptPolice = "police"
)

// deptIDs lists the demo department ids in a fixed order.
var deptIDs = []string{DeptCivil, DeptHealth, DeptMarket, DeptPolice}

// PlatformDepartment is the department recorded for platform staff (the
// data-sharing centre, 数据共享中心): the platform admin and the security
// auditor work for the platform, not for a data-providing department, so no
// dataset is "their own" and the owner rule never widens what they see.
const PlatformDepartment = "platform"

// defaultAgentAddrs are used for departments missing from Options.AgentAddrs,
// so a generated world is always loadable; `sluice demo` passes real ones.
var defaultAgentAddrs = map[string]string{
	DeptCivil:  "127.0.0.1:47101",
	DeptHealth: "127.0.0.1:47102",
	DeptMarket: "127.0.0.1:47103",
	DeptPolice: "127.0.0.1:47104",
}

// sourceName is the single source every demo department declares.
const sourceName = "main"

// Legal bases cited in the catalog. Conditional and none-shared datasets must
// cite one (分类分级: sharing is the rule, refusal the exception).
const (
	lawPIPLSensitive = "《中华人民共和国个人信息保护法》第二十八条、第三十四条（敏感个人信息及国家机关处理个人信息应限于履行法定职责所必需的范围和限度）(PIPL Art. 28, 34: sensitive personal information; state organs only within statutory duties)"
	lawPIPLOrgans    = "《中华人民共和国个人信息保护法》第十三条、第三十四条；《社会救助暂行办法》第六十六条（社会救助信息保密）(PIPL Art. 13, 34; Interim Measures on Social Assistance Art. 66: confidentiality)"
	lawHealth        = lawPIPLSensitive + "；《医疗保障基金使用监督管理条例》（医疗保障信息安全与保密）(Regulation on the Supervision of Medical Security Funds)"
	lawHousehold     = "《中华人民共和国居民身份证法》第六条、第十九条（公安机关对知悉的公民个人信息应当保密）；《中华人民共和国个人信息保护法》第三十四条 (Resident Identity Card Law Art. 6, 19; PIPL Art. 34)"
	lawCriminal      = "《中华人民共和国刑事诉讼法》第二百八十六条（犯罪记录封存）；《公安机关办理犯罪记录查询工作规定》（公通字〔2021〕19号）：犯罪记录仅依法定程序查询出具，不纳入政务数据共享 (Criminal Procedure Law Art. 286: sealing of criminal records; MPS rules on criminal record queries)"
	lawMarketPublic  = "《企业信息公示暂行条例》第六条、第八条（企业登记信息依法公示）(Interim Regulation on Enterprise Information Disclosure Art. 6, 8)"
)

func col(name string, typ sluice.ColumnType, grade sluice.Grade, rel sluice.Release, desc string) *sluice.Column {
	return &sluice.Column{Name: name, Type: typ, Grade: grade, Release: rel, Description: desc}
}

func masked(c *sluice.Column, m sluice.MaskRule) *sluice.Column {
	c.Release = sluice.ReleaseMasked
	c.Mask = m
	return c
}

func joinKey(c *sluice.Column, domain string) *sluice.Column {
	c.Release = sluice.ReleaseJoinKey
	c.KeyDomain = domain
	return c
}

// unique declares that the column holds one row per value (the demo's
// registers have one row per person).
func unique(c *sluice.Column) *sluice.Column {
	c.Unique = true
	return c
}

// dpRequired releases the column to other departments only under a
// differential-privacy budget: the k of an aggregate-only grant alone does
// not protect it against several queries combined.
func dpRequired(c *sluice.Column) *sluice.Column {
	c.DPRequired = true
	return c
}

// demoDepartments is the data resource catalog of the demo world. Release
// levels follow the brief's table exactly; grades follow 分级分类 practice
// (identity numbers, health and criminal data L4).
func demoDepartments(addrs map[string]string) []*sluice.Department {
	const (
		I = sluice.TypeInteger
		D = sluice.TypeDecimal
		T = sluice.TypeText
		A = sluice.TypeDate
	)
	const (
		plain = sluice.ReleasePlain
		agg   = sluice.ReleaseAggregate
		hide  = sluice.ReleaseHidden
	)
	src := func(dept string) []sluice.Source {
		return []sluice.Source{{Name: sourceName, Driver: sluice.DriverSQLite, DSN: dept + ".db"}}
	}
	ds := func(dept string, d *sluice.Dataset) *sluice.Dataset {
		d.Department = dept
		d.Source = sourceName
		if d.Table == "" {
			d.Table = d.Name
		}
		if d.Format == "" {
			d.Format = "数据库表 (database table)"
		}
		return d
	}
	civil := &sluice.Department{
		ID: DeptCivil, Name: "民政局 (Civil Affairs Bureau)",
		Agent:   sluice.AgentInfo{Address: addrs[DeptCivil]},
		Sources: src(DeptCivil),
		Datasets: []*sluice.Dataset{ds(DeptCivil, &sluice.Dataset{
			Name:            "residents",
			Title:           "居民基本信息及最低生活保障 (Residents and minimum living allowance)",
			Description:     "本市户籍居民的基本信息及最低生活保障（低保）认定与发放情况。(Registered residents of the city with their minimum-living-allowance status and monthly payment.)",
			ShareClass:      sluice.ShareConditional,
			LegalBasis:      lawPIPLOrgans,
			ShareConditions: "经平台初审、民政局审核同意后，在批准的范围、用途和时限内使用；身份证号仅作为隐私求交连接键，不得输出；姓名、出生日期、手机号脱敏后提供；补助金额仅提供不少于 10 人分组的统计结果。(Only under an approved application; id_card only as a private join key; name, birth date and phone masked; allowance only in aggregates over at least 10 people.)",
			UpdateFrequency: "每日 (daily)",
			Columns: []*sluice.Column{
				unique(joinKey(col("id_card", T, sluice.GradeL4, plain, "公民身份号码 (resident ID number, GB 11643)"), "person")),
				masked(col("name", T, sluice.GradeL3, plain, "姓名 (name)"), sluice.MaskSurname),
				col("gender", T, sluice.GradeL2, plain, "性别：男/女 (gender)"),
				masked(col("birth_date", A, sluice.GradeL3, plain, "出生日期 (date of birth)"), sluice.MaskYear),
				col("district", T, sluice.GradeL2, plain, "户籍所在区县 (district of residence)"),
				masked(col("phone", T, sluice.GradeL3, plain, "联系电话 (mobile phone)"), sluice.MaskPhone),
				col("low_income", I, sluice.GradeL3, plain, "是否低保对象：1 是，0 否 (receives minimum living allowance, 0/1)"),
				col("monthly_allowance", D, sluice.GradeL3, agg, "月低保金（元）(monthly allowance, yuan)"),
			},
		})},
	}
	health := &sluice.Department{
		ID: DeptHealth, Name: "医疗保障局 (Healthcare Security Administration)",
		Agent:   sluice.AgentInfo{Address: addrs[DeptHealth]},
		Sources: src(DeptHealth),
		Datasets: []*sluice.Dataset{ds(DeptHealth, &sluice.Dataset{
			Name:            "insured",
			Title:           "基本医疗保险参保及待遇享受信息 (Basic medical insurance enrolment and claims)",
			Description:     "在本市参加职工或城乡居民基本医疗保险人员的参保类型、慢性病认定及年度医疗费用结算汇总。(People insured in the city: insurance type, chronic disease status and yearly claims.)",
			ShareClass:      sluice.ShareConditional,
			LegalBasis:      lawHealth,
			ShareConditions: "健康信息属敏感个人信息：仅在批准的用途和时限内提供不少于 10 人分组的统计结果，不提供个人明细；身份证号仅作为隐私求交连接键；严重精神障碍标识仅在差分隐私预算内提供加噪统计。(Health data is sensitive personal information: only aggregates over groups of at least 10 people, never individual rows; id_card only as a private join key; the severe mental disorder flag only as noisy counts under a differential-privacy budget.)",
			UpdateFrequency: "每月 (monthly)",
			Columns: []*sluice.Column{
				unique(joinKey(col("id_card", T, sluice.GradeL4, plain, "公民身份号码 (resident ID number)"), "person")),
				col("insurance_type", T, sluice.GradeL2, plain, "参保类型：employee 职工医保，resident 城乡居民医保 (insurance type)"),
				col("chronic_disease", I, sluice.GradeL4, agg, "是否认定门诊慢特病：1 是，0 否 (recognised chronic disease, 0/1)"),
				col("annual_claims", D, sluice.GradeL3, agg, "上年度医疗费用结算总额（元）(medical claims last year, yuan)"),
				col("hospital_visits", I, sluice.GradeL3, agg, "上年度就诊次数 (visits last year)"),
				dpRequired(col("severe_mental_illness", I, sluice.GradeL4, agg, "是否纳入严重精神障碍患者管理：1 是，0 否 (under severe mental disorder care, 0/1)")),
			},
		})},
	}
	market := &sluice.Department{
		ID: DeptMarket, Name: "市场监督管理局 (Market Regulation Administration)",
		Agent:   sluice.AgentInfo{Address: addrs[DeptMarket]},
		Sources: src(DeptMarket),
		Datasets: []*sluice.Dataset{ds(DeptMarket, &sluice.Dataset{
			Name:            "enterprises",
			Title:           "市场主体登记信息 (Enterprise registrations)",
			Description:     "在本市登记的企业的统一社会信用代码、名称、法定代表人、行业、注册资本、登记状态和成立日期。(Enterprises registered in the city.)",
			ShareClass:      sluice.ShareUnconditional,
			LegalBasis:      lawMarketPublic,
			ShareConditions: "无条件共享；法定代表人身份证号仅作为隐私求交连接键。(Shared without conditions; the legal representative's ID number only as a private join key.)",
			UpdateFrequency: "实时 (real time)",
			Columns: []*sluice.Column{
				col("credit_code", T, sluice.GradeL1, plain, "统一社会信用代码 (unified social credit code, GB 32100)"),
				col("name", T, sluice.GradeL1, plain, "企业名称 (enterprise name)"),
				col("legal_rep_name", T, sluice.GradeL1, plain, "法定代表人姓名 (legal representative)"),
				joinKey(col("legal_rep_id_card", T, sluice.GradeL4, plain, "法定代表人身份证号 (legal representative's ID number)"), "person"),
				col("industry", T, sluice.GradeL1, plain, "国民经济行业门类 (industry, GB/T 4754 section)"),
				col("district", T, sluice.GradeL1, plain, "登记机关所在区县 (district of registration)"),
				col("registered_capital", D, sluice.GradeL1, plain, "注册资本（元）(registered capital, yuan)"),
				col("status", T, sluice.GradeL1, plain, "登记状态：存续/在业/吊销/注销 (registration status)"),
				col("established", A, sluice.GradeL1, plain, "成立日期 (date established)"),
			},
		})},
	}
	police := &sluice.Department{
		ID: DeptPolice, Name: "公安局 (Public Security Bureau)",
		Agent:   sluice.AgentInfo{Address: addrs[DeptPolice]},
		Sources: src(DeptPolice),
		Datasets: []*sluice.Dataset{
			ds(DeptPolice, &sluice.Dataset{
				Name:            "household",
				Title:           "人口户籍与流动人口登记信息 (Household and migrant registration)",
				Description:     "本市常住人口的户籍登记区县及流动人口（居住证）登记标识。(Household registration district and migrant (residence permit) flag of people living in the city.)",
				ShareClass:      sluice.ShareConditional,
				LegalBasis:      lawHousehold,
				ShareConditions: "经公安局审核同意后在批准的用途和时限内使用；姓名脱敏；身份证号仅作为隐私求交连接键；不得向第三方提供。(Only under an approved application; name masked; id_card only as a private join key; never passed to third parties.)",
				UpdateFrequency: "每日 (daily)",
				Columns: []*sluice.Column{
					unique(joinKey(col("id_card", T, sluice.GradeL4, plain, "公民身份号码 (resident ID number)"), "person")),
					masked(col("name", T, sluice.GradeL3, plain, "姓名 (name)"), sluice.MaskSurname),
					col("household_district", T, sluice.GradeL2, plain, "户籍或居住登记所在区县 (district of household or residence registration)"),
					col("migrant", I, sluice.GradeL3, plain, "是否流动人口：1 是，0 否 (registered migrant, 0/1)"),
				},
			}),
			ds(DeptPolice, &sluice.Dataset{
				Name:            "criminal_records",
				Title:           "违法犯罪记录 (Criminal records)",
				Description:     "经人民法院判决的犯罪记录。(Criminal convictions.)",
				ShareClass:      sluice.ShareNone,
				LegalBasis:      lawCriminal,
				ShareConditions: "不予共享。确需核查的，由当事人或有关单位依照《公安机关办理犯罪记录查询工作规定》向公安机关申请出具证明。(Not shared. Checks go through a criminal-record certificate applied for under the MPS rules.)",
				UpdateFrequency: "每日 (daily)",
				Columns: []*sluice.Column{
					col("id_card", T, sluice.GradeL4, hide, "公民身份号码 (resident ID number)"),
					col("offense", T, sluice.GradeL4, hide, "罪名 (offence)"),
					col("sentence_date", A, sluice.GradeL4, hide, "判决日期 (date of sentence)"),
				},
			}),
		},
	}
	return []*sluice.Department{civil, health, market, police}
}

// demoPurposes are the registered application scenarios (用途).
func demoPurposes() []sluice.Purpose {
	return []sluice.Purpose{
		{
			Code:        "subsidy-review",
			Name:        "低保资格复核 (subsidy eligibility review)",
			Description: "民政部门对最低生活保障对象的家庭经济状况、医疗支出等进行定期复核。(Periodic review of minimum-living-allowance recipients, including their medical expenses.)",
			LegalDuty:   "《社会救助暂行办法》第十一条、第六十条：民政部门对最低生活保障家庭的经济状况定期核查，有关部门应当予以配合 (Interim Measures on Social Assistance Art. 11, 60)",
		},
		{
			Code:        "enterprise-credit",
			Name:        "企业信用监管 (enterprise credit supervision)",
			Description: "市场监管部门开展企业信用风险分类监管，核查法定代表人等相关人员信息。(Risk-based credit supervision of enterprises, including checks on legal representatives.)",
			LegalDuty:   "《企业信息公示暂行条例》第十四条、第十七条；《市场监督管理信用修复管理办法》 (Interim Regulation on Enterprise Information Disclosure Art. 14, 17)",
		},
		{
			Code:        "public-health-planning",
			Name:        "公共卫生规划 (public health planning)",
			Description: "医疗保障和卫生健康部门按区县、年龄结构和困难群体分布规划医疗服务与保障资源。(Planning healthcare resources by district, age structure and vulnerable groups.)",
			LegalDuty:   "《中华人民共和国基本医疗卫生与健康促进法》（卫生健康事业规划与医疗保障）(Basic Healthcare and Health Promotion Law: health planning and medical security)",
		},
	}
}
